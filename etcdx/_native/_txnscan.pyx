# cython: language_level=3, boundscheck=False, wraparound=False
"""The outline of a plain TxnRequest read from its wire bytes, compiled: the same results as txnscan_py.py (its
readable twin, which documents the format and the contract). One pass in C reads every field, counts and costs
the ops and finds the first error of each kind; only a branch that could hold a duplicate key (a put and another
put or a delete) is read again, into Python bytes, for the duplicate check."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t

from etcdx._native._protowire cimport WT_LEN, WT_VARINT, read_key, read_varint

# Error codes: the same numbers as txnscan_py.py's.
cpdef enum:
    OK = 0
    ERR_TOO_MANY_OPS = 1
    ERR_EMPTY_KEY = 2
    ERR_VALUE_PROVIDED = 3
    ERR_LEASE_PROVIDED = 4
    ERR_KEY_NOT_FOUND = 5
    ERR_DUPLICATE_KEY = 6

# RequestOp's request fields: an op's kind (0 for an op with none set).
cdef enum:
    RANGE = 1
    PUT = 2
    DELETE = 3

cdef enum:
    MAX_SORT_TARGET = 4  # RangeRequest.VALUE
    MAX_SIZE_BYTES = 5  # the longest varint of a field key or length upb accepts


cdef inline uint64_t _f(uint32_t number) noexcept nogil:
    """The bit of field ``number`` (1 to 64) in a field set."""
    return (<uint64_t>1) << (number - 1)


# Each message's fields of each wire type, as field sets (see txnscan_py.py).
cdef uint64_t TXN_LEN = _f(1) | _f(2) | _f(3)
cdef uint64_t COMPARE_LEN = _f(3) | _f(7) | _f(64)
cdef uint64_t COMPARE_VARINT = _f(1) | _f(2) | _f(4) | _f(5) | _f(6) | _f(8)
cdef uint64_t OP_LEN = _f(RANGE) | _f(PUT) | _f(DELETE)
cdef uint64_t RANGE_VARINT = (_f(14) - 1) & ~(_f(3) - 1)  # fields 3 to 13
cdef uint64_t PUT_VARINT = _f(3) | _f(4) | _f(5) | _f(6)
cdef uint64_t DELETE_VARINT = _f(3)
cdef uint64_t KEY_END_LEN = _f(1) | _f(2)  # key and range_end (or a put's value)


cdef struct Op:
    int kind                    # RANGE, PUT, DELETE or 0
    Py_ssize_t key, key_len     # its key: b[key:key + key_len]
    Py_ssize_t other, other_len  # a put's value or a delete's range_end
    int error                   # the code of the op's own check


cdef Py_ssize_t _field(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, uint64_t varints, uint64_t lens,
                       uint32_t *number, uint64_t *value) noexcept nogil:
    """Reads the field at ``pos`` (before ``end``) of a message whose fields are ``varints`` (VARINT) and
    ``lens`` (LEN): its ``number`` and ``value``, a VARINT's value or the length of a LEN field's bytes, which
    end where the field does. Returns the position after the field, -1 for malformed bytes (a key or length
    over MAX_SIZE_BYTES too) or a field not in the sets."""
    cdef unsigned int wire_type
    cdef Py_ssize_t start = pos
    pos = read_key(b, pos, end, number, &wire_type)
    if pos < 0 or pos - start > MAX_SIZE_BYTES or number[0] > 64:
        return -1
    if wire_type == WT_VARINT and varints & _f(number[0]):
        return read_varint(b, pos, end, value)
    if wire_type == WT_LEN and lens & _f(number[0]):
        start = pos
        pos = read_varint(b, pos, end, value)
        if pos < 0 or pos - start > MAX_SIZE_BYTES or value[0] > <uint64_t>(end - pos):
            return -1
        return pos + <Py_ssize_t>value[0]
    return -1


cdef int _compare_key_empty(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    """1 if the Compare in b[pos:end] has an empty key, 0 if not, -1 if it is not plain."""
    cdef uint32_t number
    cdef uint64_t value, key_len = 0
    while pos < end:
        pos = _field(b, pos, end, COMPARE_VARINT, COMPARE_LEN, &number, &value)
        if pos < 0:
            return -1
        if number == 3:
            key_len = value
    return key_len == 0


cdef int _op(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, Op *op) noexcept nogil:
    """Reads the RequestOp in b[pos:end] into ``op``; -1 if it is not plain, else 0."""
    cdef uint32_t number
    cdef uint64_t value, lease = 0, ignore_value = 0, ignore_lease = 0, sort_target = 0
    op.kind, op.key, op.key_len, op.other, op.other_len = 0, 0, 0, 0, 0
    if pos == end:
        op.error = ERR_KEY_NOT_FOUND
        return 0
    pos = _field(b, pos, end, 0, OP_LEN, &number, &value)
    if pos != end:  # malformed, or a second field
        return -1
    op.kind = number
    pos = end - <Py_ssize_t>value
    while pos < end:
        if op.kind == RANGE:
            pos = _field(b, pos, end, RANGE_VARINT, KEY_END_LEN, &number, &value)
        else:
            pos = _field(b, pos, end, PUT_VARINT if op.kind == PUT else DELETE_VARINT, KEY_END_LEN, &number, &value)
        if pos < 0:
            return -1
        if number == 1:
            op.key, op.key_len = pos - <Py_ssize_t>value, <Py_ssize_t>value
        elif number == 2:
            op.other, op.other_len = pos - <Py_ssize_t>value, <Py_ssize_t>value
        elif op.kind == RANGE:
            if number == 6:
                sort_target = value
        elif op.kind == PUT:
            if number == 3:
                lease = value
            elif number == 5:
                ignore_value = value
            elif number == 6:
                ignore_lease = value
    if sort_target > MAX_SORT_TARGET:
        return -1
    if op.key_len == 0:
        op.error = ERR_EMPTY_KEY
    elif ignore_value and op.other_len:  # ignore_value and lease: set for a put only
        op.error = ERR_VALUE_PROVIDED
    elif ignore_lease and lease:
        op.error = ERR_LEASE_PROVIDED
    else:
        op.error = OK
    return 0


cdef bytes _bytes(const unsigned char *b, Py_ssize_t pos, Py_ssize_t size):
    return PyBytes_FromStringAndSize(<const char *>b + pos, size)


cdef bint _duplicate(const unsigned char *b, Py_ssize_t end, uint32_t branch):
    """Whether the branch (TxnRequest field ``branch``) of the plain txn b[:end], whose ops all passed their
    checks, puts a key twice or into a range it deletes (txnscan_py._duplicate)."""
    cdef Py_ssize_t pos = 0, after
    cdef uint32_t number
    cdef uint64_t length
    cdef Op op
    cdef list puts = [], deletes = []
    cdef bytes key, begin, stop
    while pos < end:
        after = _field(b, pos, end, 0, TXN_LEN, &number, &length)
        if number == branch:
            _op(b, after - <Py_ssize_t>length, after, &op)
            if op.kind == PUT:
                puts.append(_bytes(b, op.key, op.key_len))
            elif op.kind == DELETE:
                key = _bytes(b, op.key, op.key_len)
                deletes.append((key, _bytes(b, op.other, op.other_len) if op.other_len else key + b"\0"))
        pos = after
    if len(set(puts)) < len(puts):
        return True
    for key in puts:
        for begin, stop in deletes:
            if begin <= key < stop:
                return True
    return False


def scan(bytes data not None, Py_ssize_t max_txn_ops, Py_ssize_t kv_overhead):
    """(read_only, cost, error code) of the plain TxnRequest ``data``, None if it is not plain (txnscan_py.scan)."""
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t pos = 0, end = PyBytes_GET_SIZE(data), start, compares = 0
    cdef Py_ssize_t ops[2]
    cdef Py_ssize_t puts[2]
    cdef Py_ssize_t deletes[2]
    cdef Py_ssize_t cost[2]
    cdef uint32_t number
    cdef uint64_t length
    cdef int i, empty_key, empty_compare_key = 0, error
    cdef int first_error[2]
    cdef Op op
    for i in range(2):
        ops[i] = puts[i] = deletes[i] = cost[i] = 0
        first_error[i] = OK
    while pos < end:
        pos = _field(b, pos, end, 0, TXN_LEN, &number, &length)
        if pos < 0:
            return None
        start = pos - <Py_ssize_t>length
        if number == 1:
            empty_key = _compare_key_empty(b, start, pos)
            if empty_key < 0:
                return None
            compares += 1
            empty_compare_key |= empty_key
            continue
        if _op(b, start, pos, &op) < 0:
            return None
        i = number - 2
        ops[i] += 1
        if first_error[i] == OK:
            first_error[i] = op.error
        if op.kind == PUT:
            puts[i] += 1
            cost[i] += kv_overhead + op.key_len + op.other_len
        elif op.kind == DELETE:
            deletes[i] += 1
    if compares > max_txn_ops or ops[0] > max_txn_ops or ops[1] > max_txn_ops:
        error = ERR_TOO_MANY_OPS
    elif empty_compare_key:
        error = ERR_EMPTY_KEY
    elif first_error[0] != OK:
        error = first_error[0]
    elif first_error[1] != OK:
        error = first_error[1]
    else:
        error = OK
        for i in range(2):
            if puts[i] and (puts[i] > 1 or deletes[i]) and _duplicate(b, end, i + 2):
                error = ERR_DUPLICATE_KEY
                break
    return puts[0] + puts[1] + deletes[0] + deletes[1] == 0, max(cost[0], cost[1]), error
