# cython: language_level=3, boundscheck=False, wraparound=False
"""A stored KeyValue's encoding, compiled: the same bytes as kvcodec_py.py (its readable twin, which documents the
format), sized in one pass and written into one bytes object."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

from etcdx._native._protowire cimport varint_size, write_varint


cdef inline Py_ssize_t _number_size(int64_t number) noexcept:
    return 1 + varint_size(<uint64_t>number) if number else 0


cdef inline Py_ssize_t _bytes_size(Py_ssize_t size) noexcept:
    return 1 + varint_size(<uint64_t>size) + size if size else 0


cdef inline unsigned char *_put_number(unsigned char *p, unsigned char tag, int64_t number) noexcept:
    if number:
        p[0] = tag
        p = write_varint(p + 1, <uint64_t>number)  # a negative int64 is written as its two's complement
    return p


cdef inline unsigned char *_put_bytes(unsigned char *p, unsigned char tag, bytes data) noexcept:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    if size:
        p[0] = tag
        p = write_varint(p + 1, <uint64_t>size)
        memcpy(p, PyBytes_AS_STRING(data), size)
        p += size
    return p


def encode_key_value(bytes key not None, int64_t create_revision, int64_t mod_revision, int64_t version,
                     bytes value not None, int64_t lease):
    """The serialized KeyValue with these fields (kvcodec_py.encode_key_value)."""
    cdef Py_ssize_t total = (_bytes_size(PyBytes_GET_SIZE(key)) + _number_size(create_revision)
                             + _number_size(mod_revision) + _number_size(version)
                             + _bytes_size(PyBytes_GET_SIZE(value)) + _number_size(lease))
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    p = _put_bytes(p, 0x0A, key)
    p = _put_number(p, 0x10, create_revision)
    p = _put_number(p, 0x18, mod_revision)
    p = _put_number(p, 0x20, version)
    p = _put_bytes(p, 0x2A, value)
    _put_number(p, 0x30, lease)
    return out
