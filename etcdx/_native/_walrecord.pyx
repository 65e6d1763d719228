# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: libraries = z
"""The WAL record codec, compiled: the same bytes and the same "record" / "end" / "bad" answers as
walrecord_py.py (its readable twin; the format is in etcdx/wal/record.py). The CRC is zlib's crc32,
the function Python's zlib.crc32 calls, chained over the type byte and the payload."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy


cdef extern from "zlib.h":
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int length) nogil


HEADER_SIZE = 8
MAX_PAYLOAD = 0xFFFFFFFF - 1  # the length field (u32) counts the type byte too

cdef str _RECORD = "record"
cdef str _END = "end"
cdef str _BAD = "bad"


cdef inline void _put_u32(unsigned char *p, uint32_t value) noexcept nogil:
    p[0] = value & 0xFF
    p[1] = (value >> 8) & 0xFF
    p[2] = (value >> 16) & 0xFF
    p[3] = value >> 24


cdef inline uint32_t _get_u32(const unsigned char *p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline unsigned char *_put_record(unsigned char *p, unsigned char record_type, const unsigned char *payload,
                                       Py_ssize_t size) noexcept nogil:
    """Writes one record (HEADER_SIZE + 1 + size bytes) at ``p``; returns the end."""
    p[8] = record_type
    memcpy(p + 9, payload, size)
    _put_u32(p, <uint32_t>(size + 1))
    _put_u32(p + 4, <uint32_t>crc32(0, p + 8, <unsigned int>(size + 1)))
    return p + 9 + size


cdef inline int _check(int record_type, Py_ssize_t size) except -1:
    if not 0 <= record_type <= 0xFF:
        raise OverflowError(f"record type {record_type} out of range [0, 255]")
    if size > MAX_PAYLOAD:
        raise OverflowError(f"record payload of {size} bytes is over {MAX_PAYLOAD}")
    return 0


def encode(int record_type, payload):
    """One record; raises OverflowError for a type outside 0..255 or a payload over MAX_PAYLOAD."""
    cdef Py_buffer view
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        _check(record_type, view.len)
        out = PyBytes_FromStringAndSize(NULL, 9 + view.len)
        _put_record(<unsigned char *>PyBytes_AS_STRING(out), record_type, <const unsigned char *>view.buf, view.len)
        return out
    finally:
        PyBuffer_Release(&view)


def encode_many(int record_type, payloads):
    """The records of every payload, all of ``record_type``, back to back: b"".join(encode(...) for ...)."""
    cdef list items = payloads if type(payloads) is list else list(payloads)
    cdef Py_ssize_t i, total = 0
    cdef unsigned char *p
    cdef bytes payload
    for payload in items:
        _check(record_type, len(payload))
        total += 9 + len(payload)
    out = PyBytes_FromStringAndSize(NULL, total)
    p = <unsigned char *>PyBytes_AS_STRING(out)
    for i in range(len(items)):
        payload = items[i]
        p = _put_record(p, record_type, <const unsigned char *>PyBytes_AS_STRING(payload), len(payload))
    return out


def zeros_from(buf, Py_ssize_t offset):
    """Whether every byte of ``buf`` from ``offset`` on is zero (True past the end), 8 bytes at a time."""
    cdef Py_buffer view
    cdef const unsigned char *b
    cdef Py_ssize_t i, end
    cdef uint64_t word, seen = 0
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        b = <const unsigned char *>view.buf
        end = view.len
        i = offset
        with nogil:
            while i + 8 <= end and not seen:
                memcpy(&word, b + i, 8)
                seen |= word
                i += 8
            while i < end and not seen:
                seen |= b[i]
                i += 1
        return seen == 0
    finally:
        PyBuffer_Release(&view)


cdef class Decoded:
    """What sits at one offset: a record, the end of the data, or a damaged record."""

    cdef readonly str kind  # "record" | "end" | "bad"
    cdef readonly int record_type
    cdef readonly bytes payload
    cdef readonly Py_ssize_t next_offset

    def __init__(self, str kind, int record_type=0, bytes payload=b"", Py_ssize_t next_offset=0):
        self.kind = kind
        self.record_type = record_type
        self.payload = payload
        self.next_offset = next_offset

    def _fields(self):
        return self.kind, self.record_type, self.payload, self.next_offset

    def __eq__(self, other):
        if not isinstance(other, Decoded):
            return NotImplemented
        return self._fields() == (<Decoded>other)._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return (f"Decoded(kind={self.kind!r}, record_type={self.record_type!r}, payload={self.payload!r}, "
                f"next_offset={self.next_offset!r})")


cdef Decoded _decoded(str kind, int record_type, bytes payload, Py_ssize_t next_offset):
    cdef Decoded d = Decoded.__new__(Decoded)
    d.kind, d.record_type, d.payload, d.next_offset = kind, record_type, payload, next_offset
    return d


def decode_at(buf, Py_ssize_t offset):
    """Decodes the record starting at ``offset`` of ``buf``; see walrecord_py.decode_at for the answers."""
    cdef Py_buffer view
    cdef const unsigned char *b
    cdef Py_ssize_t end, i, start, stop
    cdef uint32_t length, crc
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        b = <const unsigned char *>view.buf
        end = view.len
        if offset > end - 8:
            for i in range(offset, end):
                if b[i]:
                    return _decoded(_BAD, 0, b"", end)
            return _decoded(_END, 0, b"", end)
        length = _get_u32(b + offset)
        crc = _get_u32(b + offset + 4)
        if length == 0:
            return _decoded(_END if crc == 0 else _BAD, 0, b"", offset + 8)
        start = offset + 8
        if length > <uint32_t>(end - start):
            return _decoded(_BAD, 0, b"", end)
        stop = start + length
        if <uint32_t>crc32(0, b + start, length) != crc:
            return _decoded(_BAD, 0, b"", stop)
        return _decoded(_RECORD, b[start], PyBytes_FromStringAndSize(<const char *>b + start + 1, length - 1), stop)
    finally:
        PyBuffer_Release(&view)
