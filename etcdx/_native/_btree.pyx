# cython: language_level=3, boundscheck=False, wraparound=False
"""SortedMap as a compiled B+tree: the same layout and algorithm as btree_py.py (its readable twin).

Nodes are final cdef classes holding Python lists; keys are compared with memcmp on the bytes
buffers, and a descent records its path in fixed C arrays instead of a Python list.

DEFAULT_ORDER (fan-out) is the twin's; btree_py.py records how it was chosen.

Mutating the map while an ``irange`` / ``items`` iterator is alive is undefined (the iterator may skip or
repeat keys, or stop early, but never crashes): collect the keys first, then mutate.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from libc.string cimport memcmp

from etcdx._native._gctrack import untrack

DEFAULT_ORDER = 64
cdef object _MISSING = object()


# A node other than the root keeps at least 2 children (order >= 4), so a tree of n keys is at most
# log2(n) + 1 levels deep: 64 path slots cover any map that fits in memory.
cdef enum:
    _MAX_DEPTH = 64


cdef inline int _cmp(bytes a, bytes b) noexcept:
    """<0, 0 or >0 as a sorts before, equal to or after b, bytewise (shorter prefix first)."""
    cdef Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b)
    cdef int r = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), la if la < lb else lb)
    if r != 0:
        return r
    return (la > lb) - (la < lb)


cdef inline Py_ssize_t _bisect_left(list keys, bytes key) noexcept:
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _cmp(<bytes>PyList_GET_ITEM(keys, mid), key) < 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _bisect_right(list keys, bytes key) noexcept:
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _cmp(key, <bytes>PyList_GET_ITEM(keys, mid)) < 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


# Nodes and their lists are kept out of the cyclic collector (no_gc, untrack): a tree has no reference cycles
# (children and the leaf chain point one way; keys are bytes), and with a large map every collection of the
# oldest generation otherwise visits every key and value through the nodes' lists (about 10 ms per 100,000
# keys, measured in a member). Values are the caller's: the key index keeps its own out too (untrack).
@cython.no_gc
cdef class _Node:
    """keys: sorted; a leaf holds one value per key, an inner node one more child than keys."""

    cdef readonly list keys
    cdef readonly bint leaf


@cython.final
@cython.no_gc
cdef class _Leaf(_Node):
    cdef readonly list values
    cdef readonly _Leaf next

    def __cinit__(self, list keys, list values, _Leaf next_leaf):
        self.keys = untrack(keys)
        self.values = untrack(values)
        self.next = next_leaf
        self.leaf = True


@cython.final
@cython.no_gc
cdef class _Inner(_Node):
    cdef readonly list children

    def __cinit__(self, list keys, list children):
        self.keys = untrack(keys)
        self.children = untrack(children)
        self.leaf = False


cdef inline bytes _as_bytes(object key):
    return key if type(key) is bytes else bytes(key)


cdef struct _Path:
    # Borrowed references to the inner nodes on the way from the root (kept alive by the tree while
    # the operation runs) and the child index taken at each of them.
    PyObject* nodes[_MAX_DEPTH]
    Py_ssize_t index[_MAX_DEPTH]
    int depth


@cython.final
cdef class SortedMap:
    """Ordered map bytes -> object, bytewise key order."""

    cdef readonly _Node _root
    cdef readonly Py_ssize_t _order
    cdef Py_ssize_t _len

    def __init__(self, Py_ssize_t order=DEFAULT_ORDER):
        if order < 4:
            raise ValueError("order must be at least 4")
        self._order = order
        self._root = _Leaf([], [], None)
        self._len = 0

    def __len__(self):
        return self._len

    cdef _Leaf _leaf_for(self, bytes key):
        cdef _Node node = self._root
        while not node.leaf:
            node = <_Node>PyList_GET_ITEM((<_Inner>node).children, _bisect_right(node.keys, key))
        return <_Leaf>node

    cdef _Leaf _descend(self, bytes key, _Path* path):
        """The leaf where ``key`` belongs, recording the inner nodes passed in ``path``."""
        cdef _Node node = self._root
        cdef Py_ssize_t i
        path.depth = 0
        while not node.leaf:
            i = _bisect_right(node.keys, key)
            path.nodes[path.depth] = <PyObject*>node
            path.index[path.depth] = i
            path.depth += 1
            node = <_Node>PyList_GET_ITEM((<_Inner>node).children, i)
        return <_Leaf>node

    cdef object _lookup(self, bytes key):
        """The value stored at ``key``, or _MISSING."""
        cdef _Leaf leaf = self._leaf_for(key)
        cdef Py_ssize_t i = _bisect_left(leaf.keys, key)
        if i < PyList_GET_SIZE(leaf.keys) and _cmp(<bytes>PyList_GET_ITEM(leaf.keys, i), key) == 0:
            return <object>PyList_GET_ITEM(leaf.values, i)
        return _MISSING

    def get(self, key, default=None):
        value = self._lookup(_as_bytes(key))
        return default if value is _MISSING else value

    def __getitem__(self, key):
        value = self._lookup(_as_bytes(key))
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        return self._lookup(_as_bytes(key)) is not _MISSING

    def __setitem__(self, key, value):
        cdef bytes k = _as_bytes(key)
        cdef _Path path
        cdef _Leaf leaf = self._descend(k, &path)
        cdef Py_ssize_t i = _bisect_left(leaf.keys, k)
        if i < PyList_GET_SIZE(leaf.keys) and _cmp(<bytes>PyList_GET_ITEM(leaf.keys, i), k) == 0:
            leaf.values[i] = value
            return
        leaf.keys.insert(i, k)
        leaf.values.insert(i, value)
        self._len += 1
        if PyList_GET_SIZE(leaf.keys) > self._order:
            self._split(leaf, &path)

    cdef int _split(self, _Node node, _Path* path) except -1:
        """Splits an overfull node in two and pushes the separator up, splitting ancestors as needed."""
        cdef Py_ssize_t mid, i
        cdef _Node right
        cdef _Leaf lnode
        cdef _Inner inode, parent
        cdef bytes separator
        while True:
            mid = PyList_GET_SIZE(node.keys) // 2
            if node.leaf:
                lnode = <_Leaf>node
                right = _Leaf(lnode.keys[mid:], lnode.values[mid:], lnode.next)
                del lnode.keys[mid:]
                del lnode.values[mid:]
                lnode.next = <_Leaf>right
                separator = <bytes>PyList_GET_ITEM(right.keys, 0)
            else:
                inode = <_Inner>node
                separator = <bytes>PyList_GET_ITEM(inode.keys, mid)
                right = _Inner(inode.keys[mid + 1:], inode.children[mid + 1:])
                del inode.keys[mid:]
                del inode.children[mid + 1:]
            if path.depth == 0:
                self._root = _Inner([separator], [node, right])
                return 0
            path.depth -= 1
            parent = <_Inner>path.nodes[path.depth]
            i = path.index[path.depth]
            parent.keys.insert(i, separator)
            parent.children.insert(i + 1, right)
            if PyList_GET_SIZE(parent.keys) <= self._order:
                return 0
            node = parent

    def pop(self, key, default=_MISSING):
        cdef bytes k = _as_bytes(key)
        cdef _Path path
        cdef _Leaf leaf = self._descend(k, &path)
        cdef Py_ssize_t i = _bisect_left(leaf.keys, k)
        if i == PyList_GET_SIZE(leaf.keys) or _cmp(<bytes>PyList_GET_ITEM(leaf.keys, i), k) != 0:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = <object>PyList_GET_ITEM(leaf.values, i)
        del leaf.keys[i]
        del leaf.values[i]
        self._len -= 1
        self._rebalance(leaf, &path)
        return value

    def __delitem__(self, key):
        self.pop(key)

    cdef int _rebalance(self, _Node node, _Path* path) except -1:
        """Restores the minimum fill of ``node`` by borrowing from or merging with a sibling."""
        cdef Py_ssize_t minimum = self._order // 2, i, size, moved
        cdef _Inner parent
        cdef _Node left, right
        cdef _Leaf lnode, lleft, lright
        cdef _Inner inode, ileft, iright
        while path.depth > 0:
            size = PyList_GET_SIZE(node.keys) if node.leaf else PyList_GET_SIZE((<_Inner>node).children)
            if size >= minimum:
                return 0
            path.depth -= 1
            parent = <_Inner>path.nodes[path.depth]
            i = path.index[path.depth]
            left = <_Node>PyList_GET_ITEM(parent.children, i - 1) if i > 0 else None
            right = <_Node>PyList_GET_ITEM(parent.children, i + 1) if i + 1 < PyList_GET_SIZE(parent.children) else None
            if node.leaf:
                lnode = <_Leaf>node
                if left is not None and PyList_GET_SIZE(left.keys) > minimum:
                    lleft = <_Leaf>left
                    moved = (PyList_GET_SIZE(lleft.keys) - PyList_GET_SIZE(lnode.keys)) // 2
                    lnode.keys[0:0] = lleft.keys[-moved:]
                    lnode.values[0:0] = lleft.values[-moved:]
                    del lleft.keys[-moved:]
                    del lleft.values[-moved:]
                    parent.keys[i - 1] = lnode.keys[0]
                    return 0
                if right is not None and PyList_GET_SIZE(right.keys) > minimum:
                    lright = <_Leaf>right
                    moved = (PyList_GET_SIZE(lright.keys) - PyList_GET_SIZE(lnode.keys)) // 2
                    lnode.keys.extend(lright.keys[:moved])
                    lnode.values.extend(lright.values[:moved])
                    del lright.keys[:moved]
                    del lright.values[:moved]
                    parent.keys[i] = lright.keys[0]
                    return 0
                if left is not None:
                    lleft = <_Leaf>left
                    lleft.keys.extend(lnode.keys)
                    lleft.values.extend(lnode.values)
                    lleft.next = lnode.next
                    del parent.keys[i - 1]
                    del parent.children[i]
                else:
                    lright = <_Leaf>right
                    lnode.keys.extend(lright.keys)
                    lnode.values.extend(lright.values)
                    lnode.next = lright.next
                    del parent.keys[i]
                    del parent.children[i + 1]
            else:
                inode = <_Inner>node
                if left is not None and PyList_GET_SIZE((<_Inner>left).children) > minimum:
                    ileft = <_Inner>left
                    inode.keys.insert(0, parent.keys[i - 1])
                    inode.children.insert(0, ileft.children.pop())
                    parent.keys[i - 1] = ileft.keys.pop()
                    return 0
                if right is not None and PyList_GET_SIZE((<_Inner>right).children) > minimum:
                    iright = <_Inner>right
                    inode.keys.append(parent.keys[i])
                    inode.children.append(iright.children.pop(0))
                    parent.keys[i] = iright.keys.pop(0)
                    return 0
                if left is not None:
                    ileft = <_Inner>left
                    ileft.keys.append(parent.keys[i - 1])
                    ileft.keys.extend(inode.keys)
                    ileft.children.extend(inode.children)
                    del parent.keys[i - 1]
                    del parent.children[i]
                else:
                    iright = <_Inner>right
                    inode.keys.append(parent.keys[i])
                    inode.keys.extend(iright.keys)
                    inode.children.extend(iright.children)
                    del parent.keys[i]
                    del parent.children[i + 1]
            node = parent
        if not node.leaf and PyList_GET_SIZE((<_Inner>node).children) == 1:
            self._root = <_Node>PyList_GET_ITEM((<_Inner>node).children, 0)
        return 0

    def irange(self, start, end=None):
        """(key, value) pairs with start <= key < end, ascending; end None = no upper bound."""
        return _RangeIterator(self, _as_bytes(start), None if end is None else _as_bytes(end))

    def items(self):
        """All (key, value) pairs, ascending."""
        return _RangeIterator(self, b"", None)

    def visible_page(self, start, end, bound, Py_ssize_t limit, type single, at_main):
        """The key index's page walk (KeyIndex.page), compiled because it visits every key of the range (a
        Kubernetes list counts a whole prefix): the first ``limit`` (key, revision) pairs, ascending, of the
        keys in [start, end) (end None: no upper bound) that have a value visible at ``at_main``, and how many
        such keys there are. ``bound`` is last_of_main(at_main), the largest packed revision of that main.

        Values are the key index's: of type ``single`` (one revision, in ``.rev``), or histories whose
        current generation's revisions are ``.revs`` (ascending, empty while the key is deleted) and whose
        ``.find(at_main)`` gives (revision, ...) or None. A history whose newest revision is visible is answered
        from ``.revs`` alone (that revision is the one ``find`` gives); any other is asked ``find``."""
        cdef bytes s = _as_bytes(start)
        cdef bytes e = None if end is None else _as_bytes(end)
        cdef _Leaf leaf = self._leaf_for(s)
        cdef Py_ssize_t i = _bisect_left(leaf.keys, s), n, count = 0
        cdef list keys, values, revs, pairs = []
        cdef bytes key
        cdef object value, rev, found
        while leaf is not None:
            keys, values = leaf.keys, leaf.values
            n = PyList_GET_SIZE(keys)
            while i < n:
                key = <bytes>PyList_GET_ITEM(keys, i)
                if e is not None and _cmp(key, e) >= 0:
                    return pairs, count
                value = <object>PyList_GET_ITEM(values, i)
                i += 1
                if type(value) is single:
                    rev = value.rev
                    if rev > bound:
                        continue
                else:
                    revs = value.revs
                    if PyList_GET_SIZE(revs) and <object>PyList_GET_ITEM(revs, PyList_GET_SIZE(revs) - 1) <= bound:
                        rev = <object>PyList_GET_ITEM(revs, PyList_GET_SIZE(revs) - 1)
                    else:
                        found = value.find(at_main)
                        if found is None:
                            continue
                        rev = found[0]
                count += 1
                if count <= limit:
                    pairs.append((key, rev))
            leaf = leaf.next
            i = 0
        return pairs, count


@cython.final
cdef class _RangeIterator:
    """Walks the linked leaves from the first key >= start; stops at the first key >= end."""

    cdef _Leaf leaf
    cdef Py_ssize_t i
    cdef bytes end
    cdef bint bounded

    def __cinit__(self, SortedMap tree, bytes start, bytes end):
        self.leaf = tree._leaf_for(start)
        self.i = _bisect_left(self.leaf.keys, start)
        self.end = end
        self.bounded = end is not None

    def __iter__(self):
        return self

    def __next__(self):
        cdef bytes key
        while self.leaf is not None:
            if self.i < PyList_GET_SIZE(self.leaf.keys):
                key = <bytes>PyList_GET_ITEM(self.leaf.keys, self.i)
                if self.bounded and _cmp(key, self.end) >= 0:
                    self.leaf = None
                    raise StopIteration
                value = <object>PyList_GET_ITEM(self.leaf.values, self.i)
                self.i += 1
                return key, value
            self.leaf = self.leaf.next
            self.i = 0
        raise StopIteration
