# cython: language_level=3, boundscheck=False, wraparound=False
"""What a gRPC server reads from a request's header list, compiled: the same API and answers as
grpchead_py.py (its readable twin and specification). The names are told apart by length and memcmp."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.string cimport memcmp

from etcdx._native.grpchead_py import TRANSPORT_HEADERS

cdef frozenset _TRANSPORT = TRANSPORT_HEADERS


cdef inline bint _is(const char* p, Py_ssize_t n, const char* literal, Py_ssize_t length) noexcept:
    return n == length and memcmp(p, literal, length) == 0


cdef bint _grpc_type(bytes value) noexcept:
    """application/grpc, or application/grpc followed by + or ; (a subtype or parameters)."""
    cdef const char* p = PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    if n < 16 or memcmp(p, b"application/grpc", 16) != 0:
        return False
    return n == 16 or p[16] == b"+" or p[16] == b";"


def request_head(list headers):
    """(the :path as text, whether it is a gRPC call: POST with an application/grpc content type, the
    grpc-timeout value or None, the metadata: every other regular field, names and values as latin-1 text)."""
    cdef str path = ""
    cdef dict metadata = {}
    cdef object timeout = None
    cdef bint is_post = False, is_grpc = False
    cdef tuple field
    cdef bytes name, value
    cdef const char* p
    cdef Py_ssize_t n
    for field in headers:
        name = <bytes?>PyTuple_GET_ITEM(field, 0)
        value = <bytes?>PyTuple_GET_ITEM(field, 1)
        p = PyBytes_AS_STRING(name)
        n = PyBytes_GET_SIZE(name)
        if _is(p, n, b":path", 5):
            path = value.decode("utf-8", "replace")
        elif _is(p, n, b":method", 7):
            is_post = _is(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), b"POST", 4)
        elif _is(p, n, b"content-type", 12):
            is_grpc = _grpc_type(value)
        elif _is(p, n, b"grpc-timeout", 12):
            timeout = value
        elif not (n and p[0] == b":") and name not in _TRANSPORT:
            metadata[name.decode("latin-1")] = value.decode("latin-1")
    return path, is_post and is_grpc, timeout, metadata
