"""Merged range permissions cover exactly the keys the grants name (checked against brute force)."""

from __future__ import annotations

import itertools

from authfixtures import READ, READWRITE, WRITE, perm
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx.auth.rangeperms import MergedRanges, UserPermissions, key_interval
from etcdx.pb.authpb import auth_pb2

# Every key of length <= 3 over a three-letter alphabet plus the bytes that matter at range edges.
ALPHABET = b"ab\x00"
KEYS = sorted({bytes(k) for n in range(4) for k in itertools.product(ALPHABET, repeat=n)})


def names(key: bytes, range_end: bytes) -> set[bytes]:
    """The keys of KEYS that (key, range_end) names, by etcd's convention, by brute force."""
    if range_end == b"\x00":
        return {k for k in KEYS if k >= key}
    if not range_end:
        return {key}
    return {k for k in KEYS if key <= k < range_end}


def test_key_interval_follows_etcd_convention():
    assert key_interval(b"a", b"") == (b"a", b"a\x00")
    assert key_interval(b"a", b"\x00") == (b"a", None)
    assert key_interval(b"a", b"c") == (b"a", b"c")
    assert key_interval(b"c", b"a") == (b"c", b"c\x00")  # inverted: as strict as the single key


def test_touching_and_overlapping_grants_merge():
    merged = MergedRanges([(b"c", b"e"), (b"a", b"c"), (b"d", b"f"), (b"x", None), (b"y", b"z")])
    assert merged.intervals() == [(b"a", b"f"), (b"x", None)]
    assert merged.covers((b"a", b"f")) and merged.covers((b"b", b"e\xff"))
    assert not merged.covers((b"a", b"f\x00")) and not merged.covers((b"f", b"g"))
    assert merged.covers((b"x", None)) and merged.covers((b"zzz", None))
    assert not merged.covers((b"w", None)) and not MergedRanges([]).covers((b"", b"\x00"))


def test_single_key_grant_covers_only_that_key():
    perms = UserPermissions.from_roles([auth_pb2.Role(name=b"r", keyPermission=[perm(READ, b"foo")])])
    assert perms.read.covers(key_interval(b"foo", b""))
    assert not perms.read.covers(key_interval(b"foo", b"\x00"))  # from-key: every key >= foo
    assert not perms.read.covers(key_interval(b"foo", b"fop"))  # prefix foo
    assert not perms.read.covers(key_interval(b"foo\x00", b""))
    assert not perms.write.covers(key_interval(b"foo", b""))


def test_readwrite_counts_for_both_and_inverted_grant_for_none():
    role = auth_pb2.Role(name=b"r", keyPermission=[perm(READWRITE, b"a", b"b"), perm(WRITE, b"z", b"y")])
    perms = UserPermissions.from_roles([role])
    assert perms.read.covers((b"a", b"b")) and perms.write.covers((b"a", b"b"))
    assert not perms.write.covers(key_interval(b"z", b""))


grant = st.tuples(st.sampled_from([READ, WRITE, READWRITE]), st.sampled_from(KEYS), st.sampled_from(KEYS))


@settings(max_examples=300, deadline=None)
@given(grants=st.lists(grant, max_size=6), key=st.sampled_from(KEYS), range_end=st.sampled_from(KEYS))
def test_covers_matches_brute_force(grants, key, range_end):
    role = auth_pb2.Role(name=b"r", keyPermission=[perm(t, k, e) for t, k, e in grants])
    perms = UserPermissions.from_roles([role])
    readable: set[bytes] = set()
    for t, k, e in grants:
        if t in (READ, READWRITE) and not (e and e != b"\x00" and e <= k):
            readable |= names(k, e)
    wanted = names(key, range_end) if not (range_end and range_end != b"\x00" and range_end <= key) else {key}
    # Keys outside KEYS exist between any two members, so brute force is exact only when it says "no".
    if not wanted <= readable:
        assert not perms.read.covers(key_interval(key, range_end))
    if perms.read.covers(key_interval(key, range_end)):
        assert wanted <= readable
