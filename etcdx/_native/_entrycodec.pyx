# cython: language_level=3, boundscheck=False, wraparound=False
"""The raft log entry codec, compiled: the same bytes and rules as entrycodec_py.py (its readable twin,
which documents the format). ``encode`` sizes the message first and writes it into one bytes object;
``decode`` walks the buffer once."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memcpy

from etcdx._native._protowire cimport WT_LEN, WT_VARINT, read_key, read_varint, skip_field, varint_size, write_varint
from etcdx._native.protowire import WireError


def encode(uint64_t term, uint64_t index, int32_t entry_type, data):
    """The serialized Entry; raises OverflowError when a number is out of its field's range."""
    cdef Py_buffer view
    cdef uint64_t type_bits = <uint64_t>(<long long>entry_type)  # a negative int32 is sign-extended
    cdef Py_ssize_t size = 0
    cdef unsigned char *p
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if term:
            size += 1 + varint_size(term)
        if index:
            size += 1 + varint_size(index)
        if type_bits:
            size += 1 + varint_size(type_bits)
        if view.len:
            size += 1 + varint_size(<uint64_t>view.len) + view.len
        out = PyBytes_FromStringAndSize(NULL, size)
        p = <unsigned char *>PyBytes_AS_STRING(out)
        if term:
            p[0] = 0x08
            p = write_varint(p + 1, term)
        if index:
            p[0] = 0x10
            p = write_varint(p + 1, index)
        if type_bits:
            p[0] = 0x18
            p = write_varint(p + 1, type_bits)
        if view.len:
            p[0] = 0x22
            p = write_varint(p + 1, <uint64_t>view.len)
            memcpy(p, view.buf, view.len)
        return out
    finally:
        PyBuffer_Release(&view)


def decode(buf):
    """(term, index, type, data) of a serialized Entry; ValueError (WireError) if malformed."""
    cdef Py_buffer view
    cdef const unsigned char *b
    cdef Py_ssize_t pos = 0, end, data_start = 0, data_len = 0
    cdef uint64_t value, term = 0, index = 0, length
    cdef int32_t entry_type = 0
    cdef uint32_t field
    cdef unsigned int wire_type
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        b = <const unsigned char *>view.buf
        end = view.len
        while pos < end:
            pos = read_key(b, pos, end, &field, &wire_type)
            if pos < 0:
                raise WireError("truncated or invalid field key")
            if wire_type == WT_VARINT and 1 <= field <= 3:
                pos = read_varint(b, pos, end, &value)
                if pos < 0:
                    raise WireError("truncated varint")
                if field == 1:
                    term = value
                elif field == 2:
                    index = value
                else:
                    entry_type = <int32_t><uint32_t>value
            elif wire_type == WT_LEN and field == 4:
                pos = read_varint(b, pos, end, &length)
                if pos < 0 or length > <uint64_t>(end - pos):
                    raise WireError("truncated data")
                data_start, data_len = pos, <Py_ssize_t>length
                pos += data_len
            else:
                pos = skip_field(b, pos, end, wire_type, field)
                if pos < 0:
                    raise WireError(f"malformed field {field} of wire type {wire_type}")
        data = PyBytes_FromStringAndSize(<const char *>b + data_start, data_len)
        return term, index, entry_type, data
    finally:
        PyBuffer_Release(&view)
