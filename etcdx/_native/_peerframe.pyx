# cython: language_level=3, boundscheck=False, wraparound=False
"""Peer frames that carry one Raft message, compiled: the same bytes and rules as peerframe_py.py (its readable
twin, which documents the format). ``encode_message_frame`` sizes the frame first and writes it into one bytes
object; ``decode_message_frame`` walks the payload once and builds the Message and its entries directly."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memcpy

from etcdx._native._protowire cimport WT_LEN, WT_VARINT, read_key, read_varint, varint_size, write_varint
from etcdx.raft.messages import Entry, EntryType, Message, MessageType

cdef tuple TYPES = tuple(MessageType)  # raft.proto's MessageType numbers are the enum's order
cdef dict TYPE_NUMBERS = {t: n for n, t in enumerate(TYPES)}
cdef tuple ENTRY_TYPES = (EntryType.NORMAL, EntryType.CONF_CHANGE)
cdef object _Entry = Entry
cdef enum:
    MAX_KEY_BYTES = 5  # a field key or a length takes at most 5 bytes as upb reads them (32 bits)
cdef object _Message = Message


# -- encoding ------------------------------------------------------------------------------------------------

cdef inline Py_ssize_t uint_size(uint64_t value) noexcept nogil:
    """The bytes of a uint64 field with a one-byte key, 0 for the default."""
    return 1 + varint_size(value) if value else 0


cdef inline unsigned char *put_uint(unsigned char *p, unsigned char key, uint64_t value) noexcept nogil:
    if value:
        p[0] = key
        p = write_varint(p + 1, value)
    return p


cdef inline Py_ssize_t len_size(Py_ssize_t length) noexcept nogil:
    """The bytes of a length-delimited field of ``length`` bytes with a one-byte key."""
    return 1 + varint_size(<uint64_t>length) + length


cdef inline bytes as_bytes(object data):
    return data if type(data) is bytes else bytes(data)


cdef inline tuple as_entry(object e):
    """An Entry (a NamedTuple) as the tuple it is; TypeError for anything else."""
    if not isinstance(e, tuple):
        raise TypeError(f"an entry must be an Entry, not {type(e).__name__}")
    return <tuple>e


cdef Py_ssize_t entry_size(tuple e) except -1:
    """The bytes of one Entry's body (what follows its key and length)."""
    cdef uint64_t term = e[0], index = e[1]
    cdef int32_t entry_type = e[2]
    cdef Py_ssize_t data_len = PyBytes_GET_SIZE(as_bytes(e[3]))  # the bytes put_entry writes
    return (
        uint_size(term) + uint_size(index) + uint_size(<uint64_t>(<long long>entry_type))
        + (len_size(data_len) if data_len else 0)
    )


cdef unsigned char *put_entry(unsigned char *p, tuple e, Py_ssize_t size) except NULL:
    cdef uint64_t term = e[0], index = e[1]
    cdef int32_t entry_type = e[2]
    cdef bytes data = as_bytes(e[3])
    cdef Py_ssize_t data_len = PyBytes_GET_SIZE(data)
    p[0] = 0x3A
    p = write_varint(p + 1, <uint64_t>size)
    p = put_uint(p, 0x08, term)
    p = put_uint(p, 0x10, index)
    p = put_uint(p, 0x18, <uint64_t>(<long long>entry_type))
    if data_len:
        p[0] = 0x22
        p = write_varint(p + 1, <uint64_t>data_len)
        memcpy(p, PyBytes_AS_STRING(data), data_len)
        p += data_len
    return p


def encode_message_frame(uint64_t cluster_id, uint64_t sender, uint64_t receiver, m):
    assert m.snapshot is None
    cdef uint64_t kind = TYPE_NUMBERS[m.type]
    cdef uint64_t to = m.to, m_sender = m.sender, term = m.term, log_term = m.log_term, index = m.index
    cdef uint64_t commit = m.commit, reject_hint = m.reject_hint
    cdef bint reject = m.reject
    cdef tuple entries = tuple(m.entries)
    cdef bytes context = as_bytes(m.context)
    cdef Py_ssize_t n = len(entries), i, body
    cdef Py_ssize_t message = (
        uint_size(kind) + uint_size(to) + uint_size(m_sender) + uint_size(term) + uint_size(log_term)
        + uint_size(index) + uint_size(commit) + (2 if reject else 0) + uint_size(reject_hint)
        + (len_size(PyBytes_GET_SIZE(context)) if PyBytes_GET_SIZE(context) else 0)
    )
    for i in range(n):
        body = entry_size(as_entry(entries[i]))
        message += 1 + varint_size(<uint64_t>body) + body
    cdef Py_ssize_t frame = uint_size(cluster_id) + uint_size(sender) + uint_size(receiver) + len_size(message)
    out = PyBytes_FromStringAndSize(NULL, 4 + frame)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    p[0] = <unsigned char>(frame >> 24)
    p[1] = <unsigned char>(frame >> 16)
    p[2] = <unsigned char>(frame >> 8)
    p[3] = <unsigned char>frame
    p = put_uint(p + 4, 0x08, cluster_id)
    p = put_uint(p, 0x10, sender)
    p = put_uint(p, 0x18, receiver)
    p[0] = 0x22
    p = write_varint(p + 1, <uint64_t>message)
    p = put_uint(p, 0x08, kind)
    p = put_uint(p, 0x10, to)
    p = put_uint(p, 0x18, m_sender)
    p = put_uint(p, 0x20, term)
    p = put_uint(p, 0x28, log_term)
    p = put_uint(p, 0x30, index)
    cdef tuple e
    for i in range(n):
        e = as_entry(entries[i])
        p = put_entry(p, e, entry_size(e))
    p = put_uint(p, 0x40, commit)
    if reject:
        p[0] = 0x58
        p[1] = 0x01
        p += 2
    p = put_uint(p, 0x60, reject_hint)
    if PyBytes_GET_SIZE(context):
        p[0] = 0x6A
        p = write_varint(p + 1, <uint64_t>PyBytes_GET_SIZE(context))
        memcpy(p, PyBytes_AS_STRING(context), PyBytes_GET_SIZE(context))
    return out


# -- decoding ------------------------------------------------------------------------------------------------

cdef inline Py_ssize_t read_u64(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, uint64_t *value) noexcept nogil:
    """read_varint, and -1 for a varint with bits past the 64th (a 10th byte over 1): not read here."""
    cdef Py_ssize_t after = read_varint(b, pos, end, value)
    if after - pos == 10 and b[after - 1] > 1:
        return -1
    return after


cdef inline Py_ssize_t next_field(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, uint32_t *number,
                                  unsigned int *wire_type, uint64_t *value) noexcept nogil:
    """Reads one field at ``pos``: its number, wire type and value (a varint's value, or a length-delimited
    field's length, its bytes then starting at the returned position minus the length). -1 for another wire
    type, a key or a length written in more than MAX_KEY_BYTES (upb refuses those), or anything that does not
    fit before ``end``."""
    cdef Py_ssize_t start = pos
    pos = read_key(b, pos, end, number, wire_type)
    if pos < 0 or pos - start > MAX_KEY_BYTES:
        return -1
    start = pos
    pos = read_u64(b, pos, end, value)
    if pos < 0:
        return -1
    if wire_type[0] == WT_LEN:
        if pos - start > MAX_KEY_BYTES or value[0] > <uint64_t>(end - pos):
            return -1
        return pos + <Py_ssize_t>value[0]
    if wire_type[0] != WT_VARINT:
        return -1
    return pos


cdef bint read_four(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, uint64_t *fields,
                    Py_ssize_t *start4, Py_ssize_t *len4) noexcept:
    """Reads b[pos:end] as a message of fields 1 to 3 (varints, into fields[1..3]) and 4 (length-delimited: its
    bytes' start and length, left as they are when it is absent), each at most once and in number order, as a
    PeerFrame's envelope and body and an Entry are written; False for anything else."""
    cdef uint32_t number, last = 0
    cdef unsigned int wire_type
    cdef uint64_t value
    while pos < end:
        pos = next_field(b, pos, end, &number, &wire_type, &value)
        if pos < 0 or number <= last or number > 4 or (wire_type == WT_LEN) != (number == 4):
            return False
        last = number
        if number == 4:
            start4[0], len4[0] = pos - <Py_ssize_t>value, <Py_ssize_t>value
        else:
            fields[number] = value
    return True


cdef object decode_entry(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end):
    """The Entry in b[pos:end], or None when it is not read here."""
    cdef uint64_t fields[4]
    cdef Py_ssize_t data_start = 0, data_len = 0
    fields[1] = fields[2] = fields[3] = 0
    if not read_four(b, pos, end, fields, &data_start, &data_len) or fields[3] > 1:
        return None
    data = PyBytes_FromStringAndSize(<const char *>b + data_start, data_len)
    return _Entry(fields[1], fields[2], ENTRY_TYPES[fields[3]], data)


def decode_message_frame(payload):
    cdef const unsigned char[::1] view = payload
    cdef const unsigned char *b = &view[0] if view.shape[0] else NULL
    cdef Py_ssize_t end = view.shape[0], pos = 0, message_start = -1, message_len = 0
    cdef Py_ssize_t context_start = 0, context_len = 0
    cdef uint64_t envelope[4]
    cdef uint64_t fields[14]
    cdef uint32_t number, last = 0
    cdef unsigned int wire_type
    cdef uint64_t value
    cdef int i
    envelope[1] = envelope[2] = envelope[3] = 0
    if not read_four(b, 0, end, envelope, &message_start, &message_len) or message_start < 0:
        return None  # not a frame of four fields as written here, or no message
    for i in range(14):
        fields[i] = 0
    entries = []
    pos, end = message_start, message_start + message_len
    while pos < end:
        pos = next_field(b, pos, end, &number, &wire_type, &value)
        if pos < 0 or number > 13 or number == 9 or number == 10:
            return None
        if (wire_type == WT_LEN) != (number == 7 or number == 13):
            return None
        if number == 7 and last == 7:
            pass  # the entries come in one run
        elif number <= last:
            return None
        last = number
        if number == 7:
            entry = decode_entry(b, pos - <Py_ssize_t>value, pos)
            if entry is None:
                return None
            entries.append(entry)
        elif number == 13:
            context_start, context_len = pos - <Py_ssize_t>value, <Py_ssize_t>value
        else:
            fields[number] = value
    if fields[1] >= <uint64_t>len(TYPES) or fields[11] > 1:
        return None
    context = PyBytes_FromStringAndSize(<const char *>b + context_start, context_len)
    message = _Message(
        TYPES[fields[1]], fields[2], fields[3], fields[4], fields[5], fields[6], tuple(entries), fields[8], None,
        fields[11] == 1, fields[12], context
    )
    return envelope[1], envelope[2], envelope[3], message
