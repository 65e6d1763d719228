"""Whatever sequence of requests is applied, the records written rebuild the same store (load(table))."""

from __future__ import annotations

from authfixtures import READ, READWRITE, WRITE, apply_records, perm
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx import errors
from etcdx.auth import AuthStore

NAMES = st.sampled_from(["root", "a", "b", ""])
ROLES = st.sampled_from(["root", "r", "s", ""])
KEYS = st.sampled_from([b"", b"a", b"b", b"\x00"])
PERMS = st.builds(perm, st.sampled_from([READ, WRITE, READWRITE]), KEYS, KEYS)

OPS = st.one_of(
    st.tuples(st.just("auth_enable")),
    st.tuples(st.just("auth_disable")),
    st.tuples(st.just("user_add"), NAMES, st.sampled_from([b"$2a$04$x", b""]), st.booleans()),
    st.tuples(st.just("user_delete"), NAMES),
    st.tuples(st.just("user_change_password"), NAMES, st.just(b"$2a$04$y")),
    st.tuples(st.just("user_grant_role"), NAMES, ROLES),
    st.tuples(st.just("user_revoke_role"), NAMES, ROLES),
    st.tuples(st.just("role_add"), ROLES),
    st.tuples(st.just("role_delete"), ROLES),
    st.tuples(st.just("role_grant_permission"), ROLES, PERMS),
    st.tuples(st.just("role_revoke_permission"), ROLES, KEYS, KEYS),
)


def call(store: AuthStore, op: tuple):
    name, *args = op
    if name == "user_add":
        return store.user_add(args[0], args[1], no_password=args[2])
    return getattr(store, name)(*args)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, max_size=40))
def test_records_rebuild_the_store_after_any_sequence(ops):
    store = AuthStore()
    table = dict(store.dump())
    revision = store.revision
    for op in ops:
        before = store.dump()
        try:
            writes = call(store, op)
        except errors.EtcdError:
            assert store.dump() == before  # a refused request changes nothing
            continue
        apply_records(table, writes)
        assert store.revision in (revision, revision + 1)  # at most one bump per request
        revision = store.revision
        if store.enabled:
            assert "root" in store.user_get("root")  # enabled implies root holds role root
    assert sorted(table.items()) == store.dump()
    loaded = AuthStore.load(table.items())
    assert loaded.dump() == store.dump() and loaded.revision == store.revision
