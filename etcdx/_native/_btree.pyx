# cython: language_level=3, boundscheck=False, wraparound=False
"""SortedMap as a compiled B+tree: the same layout and algorithm as btree_py.py (its readable twin).

Keys are compared with memcmp on the bytes buffers; nodes are cdef classes holding Python lists.
Mutating the map while an irange / items iterator is alive is undefined: collect first.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcmp

DEFAULT_ORDER = 64
cdef object _MISSING = object()


cdef inline int _cmp(bytes a, bytes b):
    cdef Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b)
    cdef int r = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), la if la < lb else lb)
    if r != 0:
        return r
    return (la > lb) - (la < lb)


cdef inline Py_ssize_t _bisect_left(list keys, bytes key):
    cdef Py_ssize_t lo = 0, hi = len(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _cmp(<bytes>keys[mid], key) < 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _bisect_right(list keys, bytes key):
    cdef Py_ssize_t lo = 0, hi = len(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _cmp(key, <bytes>keys[mid]) < 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef class _Node:
    cdef public list keys
    cdef bint leaf


cdef class _Leaf(_Node):
    cdef public list values
    cdef public _Leaf next

    def __cinit__(self, list keys, list values, _Leaf next_leaf):
        self.keys = keys
        self.values = values
        self.next = next_leaf
        self.leaf = True


cdef class _Inner(_Node):
    cdef public list children

    def __cinit__(self, list keys, list children):
        self.keys = keys
        self.children = children
        self.leaf = False


cdef inline bytes _as_bytes(object key):
    return key if type(key) is bytes else bytes(key)


cdef class SortedMap:
    cdef _Node _root
    cdef Py_ssize_t _len
    cdef Py_ssize_t _order

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
            node = <_Node>(<_Inner>node).children[_bisect_right(node.keys, key)]
        return <_Leaf>node

    def get(self, key, default=None):
        cdef bytes k = _as_bytes(key)
        cdef _Leaf leaf = self._leaf_for(k)
        cdef Py_ssize_t i = _bisect_left(leaf.keys, k)
        if i < len(leaf.keys) and _cmp(<bytes>leaf.keys[i], k) == 0:
            return leaf.values[i]
        return default

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        return self.get(key, _MISSING) is not _MISSING

    def __setitem__(self, key, value):
        cdef bytes k = _as_bytes(key)
        cdef list path = []
        cdef _Node node = self._root
        cdef Py_ssize_t i
        while not node.leaf:
            i = _bisect_right(node.keys, k)
            path.append((node, i))
            node = <_Node>(<_Inner>node).children[i]
        cdef _Leaf leaf = <_Leaf>node
        i = _bisect_left(leaf.keys, k)
        if i < len(leaf.keys) and _cmp(<bytes>leaf.keys[i], k) == 0:
            leaf.values[i] = value
            return
        leaf.keys.insert(i, k)
        leaf.values.insert(i, value)
        self._len += 1
        if len(leaf.keys) > self._order:
            self._split(leaf, path)

    cdef void _split(self, _Node node, list path):
        cdef Py_ssize_t mid, i
        cdef _Node right
        cdef _Leaf lnode
        cdef _Inner inode, parent
        cdef bytes separator
        while True:
            mid = len(node.keys) // 2
            if node.leaf:
                lnode = <_Leaf>node
                right = _Leaf(lnode.keys[mid:], lnode.values[mid:], lnode.next)
                del lnode.keys[mid:]
                del lnode.values[mid:]
                lnode.next = <_Leaf>right
                separator = <bytes>right.keys[0]
            else:
                inode = <_Inner>node
                separator = <bytes>inode.keys[mid]
                right = _Inner(inode.keys[mid + 1:], inode.children[mid + 1:])
                del inode.keys[mid:]
                del inode.children[mid + 1:]
            if not path:
                self._root = _Inner([separator], [node, right])
                return
            parent, i = path.pop()
            parent.keys.insert(i, separator)
            parent.children.insert(i + 1, right)
            if len(parent.keys) <= self._order:
                return
            node = parent

    def pop(self, key, default=_MISSING):
        cdef bytes k = _as_bytes(key)
        cdef list path = []
        cdef _Node node = self._root
        cdef Py_ssize_t i
        while not node.leaf:
            i = _bisect_right(node.keys, k)
            path.append((node, i))
            node = <_Node>(<_Inner>node).children[i]
        cdef _Leaf leaf = <_Leaf>node
        i = _bisect_left(leaf.keys, k)
        if i == len(leaf.keys) or _cmp(<bytes>leaf.keys[i], k) != 0:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = leaf.values[i]
        del leaf.keys[i]
        del leaf.values[i]
        self._len -= 1
        self._rebalance(leaf, path)
        return value

    def __delitem__(self, key):
        self.pop(key)

    cdef void _rebalance(self, _Node node, list path):
        cdef Py_ssize_t minimum = self._order // 2, i, size
        cdef _Inner parent
        cdef _Node left, right
        cdef _Leaf lnode, lleft, lright
        cdef _Inner inode, ileft, iright
        while path:
            size = len(node.keys) if node.leaf else len((<_Inner>node).children)
            if size >= minimum:
                return
            parent, i = path.pop()
            left = <_Node>parent.children[i - 1] if i > 0 else None
            right = <_Node>parent.children[i + 1] if i + 1 < len(parent.children) else None
            if node.leaf:
                lnode = <_Leaf>node
                if left is not None and len(left.keys) > minimum:
                    lleft = <_Leaf>left
                    lnode.keys.insert(0, lleft.keys.pop())
                    lnode.values.insert(0, lleft.values.pop())
                    parent.keys[i - 1] = lnode.keys[0]
                    return
                if right is not None and len(right.keys) > minimum:
                    lright = <_Leaf>right
                    lnode.keys.append(lright.keys.pop(0))
                    lnode.values.append(lright.values.pop(0))
                    parent.keys[i] = lright.keys[0]
                    return
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
                if left is not None and len((<_Inner>left).children) > minimum:
                    ileft = <_Inner>left
                    inode.keys.insert(0, parent.keys[i - 1])
                    inode.children.insert(0, ileft.children.pop())
                    parent.keys[i - 1] = ileft.keys.pop()
                    return
                if right is not None and len((<_Inner>right).children) > minimum:
                    iright = <_Inner>right
                    inode.keys.append(parent.keys[i])
                    inode.children.append(iright.children.pop(0))
                    parent.keys[i] = iright.keys.pop(0)
                    return
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
        if not node.leaf and len((<_Inner>node).children) == 1:
            self._root = <_Node>(<_Inner>node).children[0]

    def irange(self, start, end=None):
        """(key, value) pairs with start <= key < end, ascending; end None = no upper bound."""
        return _RangeIterator(self, _as_bytes(start), None if end is None else _as_bytes(end))

    def items(self):
        return _RangeIterator(self, b"", None)


cdef class _RangeIterator:
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
            if self.i < len(self.leaf.keys):
                key = <bytes>self.leaf.keys[self.i]
                if self.bounded and _cmp(key, self.end) >= 0:
                    self.leaf = None
                    raise StopIteration
                value = self.leaf.values[self.i]
                self.i += 1
                return key, value
            self.leaf = self.leaf.next
            self.i = 0
        raise StopIteration
