# cython: language_level=3
"""Protobuf wire-format primitives for the compiled codecs (inline C; nothing to build or link).

The twins spell the same rules in etcdx/_native/protowire.py: base-128 varints, least significant
group first, at most 10 bytes for 64 bits; signed values as their 64-bit two's complement.
"""

from libc.stdint cimport uint32_t, uint64_t

# Wire types (the low 3 bits of a field key).
cdef enum:
    WT_VARINT = 0
    WT_FIXED64 = 1
    WT_LEN = 2
    WT_START_GROUP = 3
    WT_END_GROUP = 4
    WT_FIXED32 = 5
    MAX_GROUP_DEPTH = 100  # nested groups upb (protobuf's C core) accepts in a message


cdef inline Py_ssize_t varint_size(uint64_t value) noexcept nogil:
    cdef Py_ssize_t n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


cdef inline unsigned char *write_varint(unsigned char *p, uint64_t value) noexcept nogil:
    """Writes the varint of ``value`` at ``p`` (room for varint_size(value) bytes); returns the end."""
    while value >= 0x80:
        p[0] = <unsigned char>(value | 0x80)
        value >>= 7
        p += 1
    p[0] = <unsigned char>value
    return p + 1


cdef inline Py_ssize_t read_varint(const unsigned char *buf, Py_ssize_t pos, Py_ssize_t end,
                                   uint64_t *value) noexcept nogil:
    """Reads the varint at ``pos`` into ``value`` (bits past the 64th dropped); returns the position
    after it, or -1 when the buffer ends inside it or it runs past 10 bytes."""
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef unsigned char byte
    while shift < 70:
        if pos >= end:
            return -1
        byte = buf[pos]
        pos += 1
        result |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            value[0] = result
            return pos
        shift += 7
    return -1


cdef inline Py_ssize_t read_key(const unsigned char *buf, Py_ssize_t pos, Py_ssize_t end, uint32_t *number,
                                unsigned int *wire_type) noexcept nogil:
    """Reads the field key at ``pos``; returns the position after it, or -1 if truncated, over 32 bits
    or of field number 0."""
    cdef uint64_t key
    pos = read_varint(buf, pos, end, &key)
    if pos < 0 or key >> 3 == 0 or key >> 32 != 0:
        return -1
    number[0] = <uint32_t>(key >> 3)
    wire_type[0] = key & 7
    return pos


cdef inline Py_ssize_t skip_field(const unsigned char *buf, Py_ssize_t pos, Py_ssize_t end,
                                  unsigned int wire_type, uint32_t number) noexcept nogil:
    """The position after the value of field ``number`` (of ``wire_type``) that starts at ``pos``; a
    group is skipped to its matching end (inside a group field number 0 passes, as in upb). -1 where
    protowire.skip_field raises WireError."""
    cdef uint32_t groups[MAX_GROUP_DEPTH]
    cdef int depth = 0
    cdef uint64_t length, key
    while True:
        if wire_type == WT_VARINT:
            pos = read_varint(buf, pos, end, &length)
            if pos < 0:
                return -1
        elif wire_type == WT_FIXED64:
            if end - pos < 8:
                return -1
            pos += 8
        elif wire_type == WT_FIXED32:
            if end - pos < 4:
                return -1
            pos += 4
        elif wire_type == WT_LEN:
            pos = read_varint(buf, pos, end, &length)
            if pos < 0 or length > <uint64_t>(end - pos):
                return -1
            pos += <Py_ssize_t>length
        elif wire_type == WT_START_GROUP:
            if depth == MAX_GROUP_DEPTH:
                return -1
            groups[depth] = number
            depth += 1
        elif wire_type == WT_END_GROUP and depth > 0 and groups[depth - 1] == number:
            depth -= 1
        else:
            return -1
        if depth == 0:
            return pos
        pos = read_varint(buf, pos, end, &key)
        if pos < 0 or key >> 32 != 0:
            return -1
        number = <uint32_t>(key >> 3)
        wire_type = key & 7
