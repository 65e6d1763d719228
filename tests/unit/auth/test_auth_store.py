"""The auth store applies etcd 3.5's user/role/enable semantics, with etcd's errors and auth revision."""

from __future__ import annotations

import pytest
from authfixtures import READ, READWRITE, WRITE, add_user, apply_records, hashed, perm, store_with_root

from etcdx import errors
from etcdx.auth import AuthInfo, AuthStore
from etcdx.auth.simple_token import SimpleTokens
from etcdx.pb.authpb import auth_pb2


def test_enable_requires_root_user_with_root_role():
    store = AuthStore()
    with pytest.raises(errors.ERR_ROOT_USER_NOT_EXIST) as e:
        store.auth_enable()
    assert (e.value.code, e.value.message) == (9, "etcdserver: root user does not exist")
    store.user_add("root", hashed("pw"), no_password=False)
    with pytest.raises(errors.ERR_ROOT_ROLE_NOT_EXIST) as e:
        store.auth_enable()
    assert e.value.message == "etcdserver: root user does not have root role"
    assert store.user_grant_role("root", "root")  # role root need not exist
    revision = store.revision
    assert store.auth_enable() == [(b"enabled", b"\x01")]
    assert store.enabled and store.revision == revision  # enabling leaves the revision, as etcd
    assert store.auth_enable() == []  # already on: ignored


def test_root_cannot_be_deleted_or_lose_root_role_while_enabled_but_can_when_disabled():
    store = store_with_root()
    store.role_add("root")
    for attempt in (
        lambda: store.user_delete("root"),
        lambda: store.user_revoke_role("root", "root"),
        lambda: store.role_delete("root"),
    ):
        with pytest.raises(errors.ERR_INVALID_AUTH_MGMT) as e:
            attempt()
        assert (e.value.code, e.value.message) == (3, "etcdserver: invalid auth management")
    store.auth_disable()
    store.user_revoke_role("root", "root")
    store.role_delete("root")
    store.user_delete("root")
    assert store.user_list() == [] and store.role_list() == []


def test_user_errors_match_etcd():
    store = AuthStore()
    with pytest.raises(errors.ERR_USER_EMPTY):
        store.user_add("", b"", no_password=True)
    store.user_add("alice", hashed("pw"), no_password=False)
    with pytest.raises(errors.ERR_USER_ALREADY_EXIST) as e:
        store.user_add("alice", hashed("pw"), no_password=False)
    assert (e.value.code, e.value.message) == (9, "etcdserver: user name already exists")
    for call in (
        lambda: store.user_get("bob"),
        lambda: store.user_delete("bob"),
        lambda: store.user_change_password("bob", b"x"),
        lambda: store.user_grant_role("bob", "root"),
        lambda: store.user_revoke_role("bob", "r"),
    ):
        with pytest.raises(errors.ERR_USER_NOT_FOUND) as e:
            call()
        assert (e.value.code, e.value.message) == (9, "etcdserver: user name not found")
    with pytest.raises(errors.ERR_ROLE_NOT_FOUND) as e:
        store.user_grant_role("alice", "nope")
    assert e.value.message == "etcdserver: role name not found"
    with pytest.raises(errors.ERR_ROLE_NOT_GRANTED) as e:
        store.user_revoke_role("alice", "root")
    assert (e.value.code, e.value.message) == (9, "etcdserver: role is not granted to the user")


def test_role_errors_match_etcd():
    store = AuthStore()
    with pytest.raises(errors.ERR_ROLE_EMPTY) as e:
        store.role_add("")
    assert (e.value.code, e.value.message) == (3, "etcdserver: role name is empty")
    store.role_add("r")
    with pytest.raises(errors.ERR_ROLE_ALREADY_EXIST) as e:
        store.role_add("r")
    assert e.value.message == "etcdserver: role name already exists"
    with pytest.raises(errors.ERR_PERMISSION_NOT_GIVEN):
        store.role_grant_permission("r", None)
    with pytest.raises(errors.ERR_ROLE_NOT_FOUND):
        store.role_grant_permission("x", perm(READ, b"a"))
    with pytest.raises(errors.ERR_PERMISSION_NOT_GRANTED) as e:
        store.role_revoke_permission("r", b"a", b"")
    assert (e.value.code, e.value.message) == (9, "etcdserver: permission is not granted to the role")
    with pytest.raises(errors.ERR_ROLE_NOT_FOUND):
        store.role_get("x")


def test_roles_sorted_and_granting_twice_changes_nothing():
    store = AuthStore()
    for r in ("zeta", "alpha", "mid"):
        store.role_add(r)
    store.user_add("u", hashed("pw"), no_password=False)
    for r in ("zeta", "alpha", "mid"):
        store.user_grant_role("u", r)
    assert store.user_get("u") == ["alpha", "mid", "zeta"]
    revision = store.revision
    assert store.user_grant_role("u", "mid") == []
    assert store.revision == revision
    assert store.role_list() == ["alpha", "mid", "zeta"]


def test_permissions_sorted_by_key_and_regrant_replaces_type():
    store = AuthStore()
    store.role_add("r")
    store.role_grant_permission("r", perm(READ, b"m"))
    store.role_grant_permission("r", perm(WRITE, b"a", b"c"))
    store.role_grant_permission("r", perm(READ, b"z", b"\x00"))
    store.role_grant_permission("r", perm(READWRITE, b"a", b"c"))  # same key and range_end: type replaced
    got = [(p.permType, p.key, p.range_end) for p in store.role_get("r")]
    assert got == [(READWRITE, b"a", b"c"), (READ, b"m", b""), (READ, b"z", b"\x00")]
    store.role_revoke_permission("r", b"m", b"")
    assert [p.key for p in store.role_get("r")] == [b"a", b"z"]


def test_role_delete_removes_it_from_every_user():
    store = AuthStore()
    store.role_add("r")
    for u in ("a", "b"):
        store.user_add(u, hashed("pw"), no_password=False)
        store.user_grant_role(u, "r")
    writes = store.role_delete("r")
    assert store.user_get("a") == [] and store.user_get("b") == []
    assert (b"role/r", None) in writes and len([w for w in writes if w[0].startswith(b"user/")]) == 2


def test_every_change_bumps_revision_once_and_reads_do_not():
    store = AuthStore()
    steps = [
        lambda: store.user_add("u", hashed("pw"), no_password=False),
        lambda: store.role_add("r"),
        lambda: store.role_grant_permission("r", perm(READ, b"k")),
        lambda: store.user_grant_role("u", "r"),
        lambda: store.user_change_password("u", hashed("pw2")),
        lambda: store.role_revoke_permission("r", b"k", b""),
        lambda: store.user_revoke_role("u", "r"),
        lambda: store.role_delete("r"),
        lambda: store.user_delete("u"),
    ]
    for expected, step in enumerate(steps, start=2):
        step()
        store.user_list()
        store.role_list()
        assert store.revision == expected
    store.user_add("root", b"", no_password=True)
    store.user_grant_role("root", "root")
    store.auth_enable()
    before = store.revision
    store.auth_disable()
    assert store.revision == before + 1  # AuthDisable commits a revision, as etcd's does
    assert store.auth_disable() == [] and store.revision == before + 1


def test_load_of_written_records_rebuilds_the_same_store():
    store = AuthStore()
    table: dict[bytes, bytes] = {}
    apply_records(table, store.user_add("root", hashed("pw"), no_password=False))
    apply_records(table, store.user_grant_role("root", "root"))
    apply_records(table, store.role_add("r"))
    apply_records(table, store.role_grant_permission("r", perm(READWRITE, b"a", b"b")))
    apply_records(table, store.user_add("nopw", b"", no_password=True))
    apply_records(table, store.user_grant_role("nopw", "r"))
    apply_records(table, store.role_add("gone"))
    apply_records(table, store.role_delete("gone"))
    apply_records(table, store.auth_enable())
    loaded = AuthStore.load(table.items())
    assert loaded.dump() == store.dump()
    assert sorted(table.items()) == store.dump()
    assert loaded.enabled and loaded.revision == store.revision
    assert loaded.user_get("nopw") == ["r"]
    assert [(p.key, p.range_end) for p in loaded.role_get("r")] == [(b"a", b"b")]
    user = auth_pb2.User.FromString(table[b"user/root"])
    assert user.password.startswith(b"$2a$04$") and list(user.roles) == ["root"]
    assert table[b"revision"] == store.revision.to_bytes(8, "big")


def test_load_refuses_unknown_records():
    with pytest.raises(ValueError):
        AuthStore.load([(b"bogus", b"")])


def test_failed_mutation_changes_nothing():
    store = store_with_root()
    before = (store.dump(), store.revision)
    for call in (
        lambda: store.user_add("root", b"", no_password=True),
        lambda: store.user_delete("root"),
        lambda: store.role_revoke_permission("nope", b"a", b""),
        lambda: store.user_grant_role("root", "nope"),
    ):
        with pytest.raises(errors.EtcdError):
            call()
    assert (store.dump(), store.revision) == before


def test_no_password_user_cannot_authenticate_and_keeps_no_password_on_change():
    store = store_with_root()
    store.user_add("svc", b"", no_password=True)
    with pytest.raises(errors.ERR_NO_PASSWORD_USER) as e:
        store.check_password("svc", "anything")
    assert (e.value.code, e.value.message) == (
        2,
        "auth: authentication failed, password was given for no password user",
    )
    store.user_change_password("svc", hashed("x"))
    assert auth_pb2.User.FromString(dict(store.dump())[b"user/svc"]).password == b""
    with pytest.raises(errors.ERR_AUTH_FAILED):
        store.check_authenticate("svc", store.revision)
    assert store.auth_info_for("svc") == AuthInfo("svc", store.revision)  # CN auth needs no password


def test_check_password():
    store = store_with_root(enable=False)
    with pytest.raises(errors.ERR_AUTH_NOT_ENABLED) as e:
        store.check_password("root", "rootpw")
    assert (e.value.code, e.value.message) == (9, "etcdserver: authentication is not enabled")
    store.auth_enable()
    assert store.check_password("root", "rootpw") == store.revision
    for name, pw in (("root", "wrong"), ("nobody", "rootpw")):
        with pytest.raises(errors.ERR_AUTH_FAILED) as e:
            store.check_password(name, pw)
        assert (e.value.code, e.value.message) == (3, "etcdserver: authentication failed, invalid user ID or password")
    store.user_change_password("root", hashed("newpw"))
    with pytest.raises(errors.ERR_AUTH_FAILED):
        store.check_password("root", "rootpw")
    assert store.check_password("root", "newpw") == store.revision


def test_admin_and_get_checks():
    store = store_with_root()
    root = store.auth_info_for("root")
    alice = add_user(store, "alice", perm(READ, b"a"))
    root = store.auth_info_for("root")
    store.check_admin(root)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        store.check_admin(alice)
    with pytest.raises(errors.ERR_USER_EMPTY) as e:
        store.check_admin(None)
    assert (e.value.code, e.value.message) == (3, "etcdserver: user name is empty")
    store.check_user_get(alice, "alice")
    store.check_role_get(alice, "alice-role")
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        store.check_user_get(alice, "root")
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        store.check_role_get(alice, "root")
    store.check_user_get(root, "alice")
    store.check_role_get(root, "alice-role")
    store.auth_disable()
    store.check_admin(None)  # everything is allowed while auth is disabled
    store.check_read(None, (b"x", None))


def test_tokens_of_a_deleted_or_repassworded_user_stop_working():
    tokens = SimpleTokens(300)
    store = store_with_root(tokens)
    add_user(store, "alice")
    add_user(store, "bob")
    t_alice = tokens.assign("alice", store.revision, 0.0, simple_prefix="a" * 16, index=1)
    t_bob = tokens.assign("bob", store.revision, 0.0, simple_prefix="b" * 16, index=2)
    store.user_delete("alice")
    store.user_change_password("bob", hashed("new"))
    for token in (t_alice, t_bob):
        with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
            tokens.info(token, 1.0, store.revision)


def test_authenticate_applies_only_at_the_revision_the_password_was_checked_at():
    store = store_with_root()
    add_user(store, "alice", password="old")
    checked = store.check_password("alice", "old")
    store.check_authenticate("alice", checked)
    store.user_change_password("alice", hashed("new"))  # lands between the check and the apply
    with pytest.raises(errors.ERR_AUTH_OLD_REVISION):
        store.check_authenticate("alice", checked)
    with pytest.raises(errors.ERR_AUTH_FAILED):
        store.check_password("alice", "old")
    store.check_authenticate("alice", store.check_password("alice", "new"))
    store.user_delete("alice")
    with pytest.raises(errors.ERR_AUTH_FAILED):
        store.check_authenticate("alice", store.revision)


def test_unknown_user_is_not_found_for_admin_checks_and_denied_for_key_checks():
    """As etcd: a certificate CN naming no user gets "user name not found" from admin checks."""
    store = store_with_root()
    ghost = store.auth_info_for("ghost")
    for check in (store.check_admin, lambda i: store.check_user_get(i, "x"), lambda i: store.check_role_get(i, "r")):
        with pytest.raises(errors.ERR_USER_NOT_FOUND):
            check(ghost)
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        store.check_read(ghost, (b"k", b"k\x00"))
    with pytest.raises(errors.ERR_PERMISSION_DENIED):
        store.check_authenticated(ghost)
