# cython: language_level=3
"""Keeping objects out of the cyclic garbage collector's view (the readable twin is gctrack_py.py).

CPython's collector walks every tracked container on each collection of the oldest generation, visiting
everything it refers to. A member holds a few large structures of acyclic containers (the key index, the
Raft log in memory): walked, they cost a pause of the event loop that grows with them (36 to 47 ms with
100,000 keys written since start-up, measured). ``untrack`` takes such containers out of that walk.
"""

cdef extern from "Python.h":
    bint PyObject_GC_IsTracked(object)
    void PyObject_GC_UnTrack(void*)


def untrack(obj):
    """Takes ``obj`` (a container) out of the cyclic collector's view, and returns it. The caller's contract:
    ``obj`` never becomes part of a reference cycle (what it refers to, now or later, never refers back to
    it), so reference counting alone frees it; and nothing the collector must see is reachable only through
    it. Lists stay untracked as they change; a new list must be untracked again."""
    if PyObject_GC_IsTracked(obj):
        PyObject_GC_UnTrack(<void*>obj)
    return obj
