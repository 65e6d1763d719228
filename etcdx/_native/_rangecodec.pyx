# cython: language_level=3, boundscheck=False, wraparound=False
"""RangeResponse encoding from stored KeyValue bytes, compiled: the same bytes as rangecodec_py.py (its
readable twin, which documents the format). One pass sizes the message, a second copies every piece
into one bytes object of exactly that size."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

from etcdx._native._protowire cimport varint_size, write_varint


cdef inline unsigned char *_put_field(unsigned char *p, unsigned char key, bytes value) noexcept:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(value)
    p[0] = key
    p = write_varint(p + 1, <uint64_t>size)
    memcpy(p, PyBytes_AS_STRING(value), size)
    return p + size


cdef inline unsigned char *_put_varint_field(unsigned char *p, unsigned char key, uint64_t value) noexcept:
    if value:
        p[0] = key
        p = write_varint(p + 1, value)
    return p


def encode_header(uint64_t cluster_id, uint64_t member_id, int64_t revision, uint64_t raft_term):
    """The serialized ResponseHeader with these fields (rangecodec_py.encode_header)."""
    cdef unsigned char buf[44]  # four keys and four varints of at most 10 bytes
    cdef unsigned char *p = buf
    p = _put_varint_field(p, 0x08, cluster_id)
    p = _put_varint_field(p, 0x10, member_id)
    p = _put_varint_field(p, 0x18, <uint64_t>revision)  # a negative int64 is written as its two's complement
    p = _put_varint_field(p, 0x20, raft_term)
    return PyBytes_FromStringAndSize(<char *>buf, p - buf)


def encode(bytes header not None, kvs, bint more, int64_t count):
    """The serialized RangeResponse; ``header`` is a serialized ResponseHeader, ``kvs`` serialized KeyValues."""
    cdef list blobs = kvs if type(kvs) is list else list(kvs)
    cdef Py_ssize_t n = PyList_GET_SIZE(blobs), i, size, total
    cdef uint64_t count_bits = <uint64_t>count  # a negative int64 is written as its two's complement
    cdef unsigned char *p
    cdef object blob
    total = 1 + varint_size(<uint64_t>PyBytes_GET_SIZE(header)) + PyBytes_GET_SIZE(header)
    for i in range(n):
        blob = <object>PyList_GET_ITEM(blobs, i)
        if not isinstance(blob, bytes):
            raise TypeError(f"kvs[{i}] must be bytes, not {type(blob).__name__}")
        size = PyBytes_GET_SIZE(blob)
        total += 1 + varint_size(<uint64_t>size) + size
    if more:
        total += 2
    if count_bits:
        total += 1 + varint_size(count_bits)
    out = PyBytes_FromStringAndSize(NULL, total)
    p = <unsigned char *>PyBytes_AS_STRING(out)
    p = _put_field(p, 0x0A, header)
    for i in range(n):
        p = _put_field(p, 0x12, <bytes>PyList_GET_ITEM(blobs, i))
    if more:
        p[0] = 0x18
        p[1] = 0x01
        p += 2
    if count_bits:
        p[0] = 0x20
        write_varint(p + 1, count_bits)
    return out
