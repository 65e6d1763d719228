# cython: language_level=3, boundscheck=False, wraparound=False
"""A proposal's InternalRequest encoded around a client's request bytes, compiled: the same bytes as
proposal_py.py (its readable twin, which documents the format), written into one bytes object."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from etcdx._native._protowire cimport varint_size, write_varint


def embed(uint64_t request_id, bytes stamp not None, unsigned char field_key, bytes message not None):
    """The InternalRequest bytes: id ``request_id``, then ``stamp``, then ``message`` under ``field_key``."""
    if field_key > 0x7F:
        raise OverflowError(f"field_key {field_key} out of range [0, 127]")  # a key of one byte: fields 1 to 15
    cdef Py_ssize_t stamp_size = PyBytes_GET_SIZE(stamp), size = PyBytes_GET_SIZE(message)
    cdef Py_ssize_t total = 1 + varint_size(request_id) + stamp_size + 1 + varint_size(<uint64_t>size) + size
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    p[0] = 0x08
    p = write_varint(p + 1, request_id)
    memcpy(p, PyBytes_AS_STRING(stamp), stamp_size)
    p += stamp_size
    p[0] = field_key
    p = write_varint(p + 1, <uint64_t>size)
    memcpy(p, PyBytes_AS_STRING(message), size)
    return out
