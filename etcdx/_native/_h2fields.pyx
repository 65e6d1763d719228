# cython: language_level=3, boundscheck=False, wraparound=False
"""Field validity of HTTP/2 requests and trailers received by a server (RFC 9113 8.2 and 8.3.1), compiled:
the same API and answers as h2fields_py.py (its readable twin and specification).

What differs is only how: every field is checked in C on each request (a table of token octets, a scan of
the value) instead of remembering the fields found valid, so the checker keeps no state.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.string cimport memcmp

cdef enum:
    _METHOD = 1
    _SCHEME = 2
    _PATH = 4
    _AUTHORITY = 8
    _REQUIRED = _METHOD | _SCHEME | _PATH

# RFC 9110 5.1 token octets, lowercase only (RFC 9113 8.2.1: an uppercase name is malformed).
cdef bint _TOKEN[256]
for _octet in range(256):
    _TOKEN[_octet] = chr(_octet) in "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"

# Names every gRPC request carries: valid by construction (as the twin, they skip the name check).
cdef frozenset _COMMON_NAMES = frozenset(
    [b"content-type", b"te", b"user-agent", b"grpc-timeout", b"grpc-accept-encoding", b"grpc-encoding"]
)
# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.
cdef frozenset _CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)


cdef inline bint _is(const char* p, Py_ssize_t n, const char* literal, Py_ssize_t length) noexcept:
    return n == length and memcmp(p, literal, length) == 0


cdef int _pseudo_bit(bytes name) noexcept:
    """The bit of a request pseudo-header (RFC 9113 8.3.1), 0 for any other name."""
    cdef const char* p = PyBytes_AS_STRING(name)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name)
    if _is(p, n, b":path", 5):
        return _PATH
    if _is(p, n, b":method", 7):
        return _METHOD
    if _is(p, n, b":scheme", 7):
        return _SCHEME
    if _is(p, n, b":authority", 10):
        return _AUTHORITY
    return 0


cdef bint _bad_value(bytes value) noexcept:
    """NUL, CR or LF anywhere, or SP or HTAB at either end (RFC 9113 8.2.1)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
    cdef unsigned char octet
    if n and (p[0] == 32 or p[0] == 9 or p[n - 1] == 32 or p[n - 1] == 9):
        return True
    for i in range(n):
        octet = p[i]
        if octet == 0 or octet == 13 or octet == 10:
            return True
    return False


cdef bint _token(bytes name) noexcept:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(name)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name), i
    if n == 0:
        return False
    for i in range(n):
        if not _TOKEN[p[i]]:
            return False
    return True


cdef str _check(bytes name, bytes value):
    """What is wrong with one field (a pseudo-header's name is known good already), or None."""
    if _bad_value(value):
        return f"value of {name!r} has NUL, CR, LF or surrounding whitespace"
    if PyBytes_GET_SIZE(name) and PyBytes_AS_STRING(name)[0] == b":":
        return None
    if _is(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name), b"te", 2) and value != b"trailers":
        return "te other than 'trailers'"
    if name not in _COMMON_NAMES and (not _token(name) or name in _CONNECTION_SPECIFIC):
        return f"field name {name!r} is not a lowercase token or is connection-specific"
    return None


cdef class FieldChecker:
    """Checks the requests and trailers of one connection (stateless here; the twin remembers valid fields)."""

    def request_problem(self, list headers):
        """What makes ``headers`` a malformed request, or None when it is well-formed."""
        cdef int seen = 0, bit
        cdef bint regular = False
        cdef tuple field
        cdef bytes name, value
        cdef str problem
        for field in headers:
            name = <bytes?>PyTuple_GET_ITEM(field, 0)
            value = <bytes?>PyTuple_GET_ITEM(field, 1)
            if PyBytes_GET_SIZE(name) and PyBytes_AS_STRING(name)[0] == b":":
                bit = _pseudo_bit(name)
                if bit == 0:
                    return f"pseudo-header {name!r} is not a request pseudo-header"
                if regular:
                    return f"pseudo-header {name!r} after a regular field"
                if seen & bit:
                    return f"pseudo-header {name!r} repeated"
                if not PyBytes_GET_SIZE(value) and bit != _AUTHORITY:
                    return f"pseudo-header {name!r} is empty"
                seen |= bit
            else:
                regular = True
            problem = _check(name, value)
            if problem is not None:
                return problem
        if seen & _REQUIRED != _REQUIRED:
            return "request without :method, :scheme and :path"
        return None

    def trailers_problem(self, list headers):
        """What makes ``headers`` a malformed trailer section (no pseudo-headers there), or None."""
        cdef tuple field
        cdef bytes name
        cdef str problem
        for field in headers:
            name = <bytes?>PyTuple_GET_ITEM(field, 0)
            if PyBytes_GET_SIZE(name) and PyBytes_AS_STRING(name)[0] == b":":
                return f"pseudo-header {name!r} in trailers"
            problem = _check(name, <bytes?>PyTuple_GET_ITEM(field, 1))
            if problem is not None:
                return problem
        return None
