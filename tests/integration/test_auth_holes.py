"""The known ways around etcd's RBAC, each tried on a real etcdx process with a real gRPC client (grpcio).

Which of them etcd 3.5.1 itself lets through is recorded in etcdx.auth.policy.ETCD_3_5_1 and checked
against a real etcd in tests/compat/test_auth_differential.py (LeaseTimeToLive keys, keep-alive, lease
grant, member list, alarms without a user) and tests/unit/auth/test_auth_holes_vs_etcd.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from etcdx.pb.authpb import auth_pb2
from etcdx.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.support.auth_servers import make_material, secured

PASSWORD = "pw-Sekr1t-9f3a"  # searched for on disk and in the log


class Client:
    """grpcio stubs on one channel, every call carrying ``token``."""

    def __init__(self, channel: grpc.Channel, token: str = "") -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.md = (("token", token),) if token else ()

    def call(self, method, request):
        return method(request, metadata=self.md, timeout=10)


def refused(call, code: grpc.StatusCode, text: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert (err.value.code(), err.value.details()) == (code, text)


DENIED = (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
BAD_TOKEN = (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
# etcd 3.5.1's cancel_reason of a watch refused for permission: its gRPC error's Error() text.
WATCH_DENIED = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
OLD_REVISION = (grpc.StatusCode.UNKNOWN, "auth: revision in header is old")  # etcd's answer for key operations


def setup_users(anon: Client) -> None:
    """root; alice: read on "foo" and its prefix, readwrite on "a/" and its prefix; auth on; foo and zoo set."""
    a = anon.auth
    a.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"))
    a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    a.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password=PASSWORD))
    for role, key, end, perm in (("reader", b"foo", b"fop", auth_pb2.Permission.READ), ("apps", b"a/", b"a0", 2)):
        a.RoleAdd(rpc_pb2.AuthRoleAddRequest(name=role))
        permission = auth_pb2.Permission(permType=perm, key=key, range_end=end)
        a.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name=role, perm=permission))
        a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role=role))
    anon.kv.Put(rpc_pb2.PutRequest(key=b"foo", value=b"1"))
    anon.kv.Put(rpc_pb2.PutRequest(key=b"zoo", value=b"secret"))
    a.AuthEnable(rpc_pb2.AuthEnableRequest())


class Root:
    """root, logging in anew for every call: after any auth change a JWT made before it is refused as old,
    and clients (clientv3) then log in again."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel

    def __getattr__(self, name: str):
        return getattr(Client(self._channel), name)

    def call(self, method, request):
        client = login(self._channel, "root", "rootpw")
        stub, name = method
        return getattr(getattr(client, stub), name)(request, metadata=client.md, timeout=10)


def login(channel: grpc.Channel, name: str, password: str) -> Client:
    token = rpc_pb2_grpc.AuthStub(channel).Authenticate(rpc_pb2.AuthenticateRequest(name=name, password=password))
    return Client(channel, token.token)


@pytest.fixture(scope="module", params=["simple", "jwt"])
def member(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"auth-{request.param}")
    material = make_material(directory)
    server = secured(directory, material, etcdx=True, tls=False, token=request.param)
    with server.start(), server.channel() as channel:
        setup_users(Client(channel))
        server.material, server.token_kind = material, request.param
        yield server


@pytest.fixture
def channel(member):
    with member.channel() as channel:
        yield channel


def test_nested_txn_cannot_write_outside_permissions(channel):
    alice, root = login(channel, "alice", PASSWORD), Root(channel)
    inner = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"zoo", value=b"owned"))])
    outer = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/ok", value=b"x")),
            rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_txn=inner)])),
        ]
    )
    refused(lambda: alice.call(alice.kv.Txn, outer), *DENIED)
    assert root.call(("kv", "Range"), rpc_pb2.RangeRequest(key=b"zoo")).kvs[0].value == b"secret"
    assert root.call(("kv", "Range"), rpc_pb2.RangeRequest(key=b"a/ok")).count == 0


def test_txn_put_prev_kv_needs_read(channel):
    alice = login(channel, "alice", PASSWORD)
    root = Root(channel)
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"a/w", value=b"1"))
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"foo", value=b"1"))
    # alice may read foo but not write it, and may write a/...: a put with prev_kv on foo is refused
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"foo", value=b"2", prev_kv=True))
    refused(lambda: alice.call(alice.kv.Txn, rpc_pb2.TxnRequest(success=[put])), *DENIED)


def _watch(client: Client, key: bytes, range_end: bytes, watch_id: int = 0):
    """Opens a watch; returns (its created reply, the response iterator, the request queue's closer)."""
    import queue

    requests: queue.Queue = queue.Queue()
    create = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, watch_id=watch_id)
    create = rpc_pb2.WatchRequest(create_request=create)
    requests.put(create)

    def feed():
        while True:
            item = requests.get()
            if item is None:
                return
            yield item

    responses = client.watch.Watch(feed(), metadata=client.md, timeout=10)
    return next(responses), responses, lambda: requests.put(None)


def test_watch_wider_than_read_permission_is_refused_and_leaks_nothing(channel):
    alice, root = login(channel, "alice", PASSWORD), Root(channel)
    for key, end in ((b"foo", b"\x00"), (b"", b"\x00"), (b"fo", b"fop"), (b"zoo", b"")):
        created, responses, close = _watch(alice, key, end)
        close()
        assert created.created and created.canceled and created.cancel_reason == WATCH_DENIED
        assert created.watch_id == 0  # the requested id, as etcd 3.5.1 answers
    created, responses, close = _watch(alice, b"zoo", b"", watch_id=7)
    close()
    assert (created.watch_id, created.created, created.canceled, created.cancel_reason) == (7, True, True, WATCH_DENIED)
    created, responses, close = _watch(alice, b"foo", b"fop")  # exactly its permission: allowed
    assert created.created and not created.canceled
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"zoo", value=b"hidden"))
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"foo/1", value=b"seen"))
    event = next(responses)
    close()
    assert [e.kv.key for e in event.events] == [b"foo/1"]


def test_lease_time_to_live_keys_and_revoke_need_rights_on_attached_keys(channel):
    alice, root = login(channel, "alice", PASSWORD), Root(channel)
    lease = root.call(("lease", "LeaseGrant"), rpc_pb2.LeaseGrantRequest(TTL=100)).ID
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"zoo/leased", value=b"v", lease=lease))
    refused(
        lambda: alice.call(alice.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True)), *DENIED
    )
    assert alice.call(alice.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=lease)).grantedTTL == 100
    refused(lambda: alice.call(alice.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=lease)), *DENIED)
    assert root.call(("kv", "Range"), rpc_pb2.RangeRequest(key=b"zoo/leased")).count == 1
    # a lease holding only keys alice may write: alice may revoke it; with no user at all, nobody may
    mine = root.call(("lease", "LeaseGrant"), rpc_pb2.LeaseGrantRequest(TTL=100)).ID
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"a/leased", value=b"v", lease=mine))
    anon = Client(channel)
    refused(
        lambda: anon.call(anon.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=mine)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: user name is empty",
    )
    alice.call(alice.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=mine))
    root.call(("lease", "LeaseRevoke"), rpc_pb2.LeaseRevokeRequest(ID=lease))


def test_alarm_changes_and_compaction_are_root_only(channel):
    alice = login(channel, "alice", PASSWORD)
    activate = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=1, alarm=rpc_pb2.NOSPACE)
    refused(lambda: alice.call(alice.maintenance.Alarm, activate), grpc.StatusCode.UNKNOWN, "auth: permission denied")
    refused(lambda: alice.call(alice.kv.Compact, rpc_pb2.CompactionRequest(revision=1)), *DENIED)


def test_deleted_user_token_is_refused(member, channel):
    root = Root(channel)
    root.call(("auth", "UserAdd"), rpc_pb2.AuthUserAddRequest(name="dave", password="davepw"))
    root.call(("auth", "UserGrantRole"), rpc_pb2.AuthUserGrantRoleRequest(user="dave", role="reader"))
    dave = login(channel, "dave", "davepw")
    assert dave.call(dave.kv.Range, rpc_pb2.RangeRequest(key=b"foo")).count == 1
    root.call(("auth", "UserDelete"), rpc_pb2.AuthUserDeleteRequest(name="dave"))
    expected = BAD_TOKEN if member.token_kind == "simple" else OLD_REVISION
    refused(lambda: dave.call(dave.kv.Range, rpc_pb2.RangeRequest(key=b"foo")), *expected)
    refused(lambda: dave.call(dave.kv.Put, rpc_pb2.PutRequest(key=b"foo", value=b"x")), *expected)


def test_role_that_lost_its_permission_no_longer_grants_it(member, channel):
    root = Root(channel)
    root.call(("auth", "UserAdd"), rpc_pb2.AuthUserAddRequest(name="erin", password="erinpw"))
    root.call(("auth", "RoleAdd"), rpc_pb2.AuthRoleAddRequest(name="erins"))
    perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"e/", range_end=b"e0")
    root.call(("auth", "RoleGrantPermission"), rpc_pb2.AuthRoleGrantPermissionRequest(name="erins", perm=perm))
    root.call(("auth", "UserGrantRole"), rpc_pb2.AuthUserGrantRoleRequest(user="erin", role="erins"))
    erin = login(channel, "erin", "erinpw")
    erin.call(erin.kv.Put, rpc_pb2.PutRequest(key=b"e/1", value=b"x"))
    revoke = rpc_pb2.AuthRoleRevokePermissionRequest(role="erins", key=b"e/", range_end=b"e0")
    root.call(("auth", "RoleRevokePermission"), revoke)
    # simple token: checked against the permissions of now; JWT: made before the change, so refused as old
    expected = DENIED if member.token_kind == "simple" else OLD_REVISION
    refused(lambda: erin.call(erin.kv.Put, rpc_pb2.PutRequest(key=b"e/2", value=b"x")), *expected)
    refused(lambda: erin.call(erin.kv.Range, rpc_pb2.RangeRequest(key=b"e/1")), *expected)
    again = login(channel, "erin", "erinpw")
    refused(lambda: again.call(again.kv.Put, rpc_pb2.PutRequest(key=b"e/2", value=b"x")), *DENIED)


# JWT only: a simple token takes the revision of the moment it is used (covered in-process).
@pytest.mark.parametrize("member", ["jwt"], indirect=True)
def test_permission_revoked_while_the_request_was_in_flight(member, channel):
    """A JWT carries the auth revision it was made at, as a request in flight does: after a revocation
    lands, a write made under the older revision is refused in apply, though its user still exists."""
    root = Root(channel)
    alice = login(channel, "alice", PASSWORD)
    alice.call(alice.kv.Put, rpc_pb2.PutRequest(key=b"a/inflight", value=b"1"))
    root.call(("auth", "RoleAdd"), rpc_pb2.AuthRoleAddRequest(name="unrelated"))  # any auth change
    refused(lambda: alice.call(alice.kv.Put, rpc_pb2.PutRequest(key=b"a/inflight", value=b"2")), *OLD_REVISION)
    assert root.call(("kv", "Range"), rpc_pb2.RangeRequest(key=b"a/inflight")).kvs[0].value == b"1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("member", ["jwt"], indirect=True)
def test_forged_and_expired_jwts_are_refused(member, channel):
    claims = {"username": "root", "revision": 1_000_000, "exp": int(time.time()) + 600}
    none_token = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_key = jwt.encode(claims, other_key, algorithm="RS256")
    own_key = serialization.load_pem_private_key(Path(member.material.jwt_private).read_bytes(), password=None)
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, own_key, algorithm="RS256")
    # HS256 keyed with the member's public key (the classic algorithm confusion), signed by hand
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(Path(member.material.jwt_public).read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    hs256 = f"{signing_input}.{_b64(mac)}"
    for token in (none_token, wrong_key, expired, hs256):
        forger = Client(channel, token)
        refused(lambda f=forger: f.call(f.kv.Range, rpc_pb2.RangeRequest(key=b"zoo")), *BAD_TOKEN)
        refused(lambda f=forger: f.call(f.auth.UserList, rpc_pb2.AuthUserListRequest()), *BAD_TOKEN)


def test_no_password_on_disk_or_in_the_log(member, channel):
    root = Root(channel)
    root.call(("auth", "UserChangePassword"), rpc_pb2.AuthUserChangePasswordRequest(name="alice", password=PASSWORD))
    login(channel, "alice", PASSWORD)
    refused(
        lambda: login(channel, "alice", PASSWORD + "x"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
    )
    time.sleep(0.3)  # the batch transaction commits
    needle = PASSWORD.encode()
    files = [Path(member.log_path), *(p for p in Path(member.data_dir).rglob("*") if p.is_file())]
    assert any(p.suffix == ".wal" for p in files) or any("wal" in str(p) for p in files)
    holding = [str(p) for p in files if needle in p.read_bytes()]
    assert holding == []


def test_client_certificate_cn_is_the_user(tmp_path):
    material = make_material(tmp_path)
    alice_cert = material.ca.issue("alice", "alice")
    flags = ("--trusted-ca-file", material.ca.path, "--client-cert-auth")
    server = secured(tmp_path, material, etcdx=True, tls=True, token="simple", extra=flags)
    server.ready_cert = (alice_cert.cert, alice_cert.key)
    with server.start(), server.channel(alice_cert.cert, alice_cert.key) as channel:
        setup_users(Client(channel))
        as_alice = Client(channel)  # no token, no password: the certificate's CN
        assert as_alice.call(as_alice.kv.Range, rpc_pb2.RangeRequest(key=b"foo")).kvs[0].value == b"1"
        as_alice.call(as_alice.kv.Put, rpc_pb2.PutRequest(key=b"a/cn", value=b"by-cert"))
        refused(lambda: as_alice.call(as_alice.kv.Range, rpc_pb2.RangeRequest(key=b"zoo")), *DENIED)
        refused(lambda: as_alice.call(as_alice.auth.UserList, rpc_pb2.AuthUserListRequest()), *DENIED)
        root = login(channel, "root", "rootpw")  # a password (its token), if also sent, wins over the CN
        assert root.call(root.kv.Range, rpc_pb2.RangeRequest(key=b"zoo")).kvs[0].value == b"secret"
        assert root.call(root.auth.UserList, rpc_pb2.AuthUserListRequest()).users == ["alice", "root"]


def test_open_watch_stops_when_its_user_loses_the_permission(channel):
    root = Root(channel)
    root.call(("auth", "UserAdd"), rpc_pb2.AuthUserAddRequest(name="wes", password="wespw"))
    root.call(("auth", "RoleAdd"), rpc_pb2.AuthRoleAddRequest(name="wes-r"))
    perm = auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=b"w/", range_end=b"w0")
    root.call(("auth", "RoleGrantPermission"), rpc_pb2.AuthRoleGrantPermissionRequest(name="wes-r", perm=perm))
    root.call(("auth", "UserGrantRole"), rpc_pb2.AuthUserGrantRoleRequest(user="wes", role="wes-r"))
    wes = login(channel, "wes", "wespw")
    created, responses, close = _watch(wes, b"w/", b"w0")
    assert created.created and not created.canceled
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"w/1", value=b"seen"))
    assert [e.kv.value for e in next(responses).events] == [b"seen"]
    revoke = rpc_pb2.AuthRoleRevokePermissionRequest(role="wes-r", key=b"w/", range_end=b"w0")
    root.call(("auth", "RoleRevokePermission"), revoke)
    root.call(("kv", "Put"), rpc_pb2.PutRequest(key=b"w/2", value=b"not for wes"))
    ended = next(responses)
    close()
    assert (ended.watch_id, ended.canceled, ended.cancel_reason, list(ended.events)) == (
        created.watch_id,
        True,
        WATCH_DENIED,
        [],
    )


def test_auth_state_survives_a_restart(tmp_path):
    material = make_material(tmp_path)
    server = secured(tmp_path, material, etcdx=True, tls=False, token="simple")
    with server.start():
        with server.channel() as channel:
            setup_users(Client(channel))
        server.restart()
        with server.channel() as channel:
            anon = Client(channel)
            refused(
                lambda: anon.call(anon.kv.Range, rpc_pb2.RangeRequest(key=b"foo")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "etcdserver: user name is empty",
            )
            alice = login(channel, "alice", PASSWORD)
            assert alice.call(alice.kv.Range, rpc_pb2.RangeRequest(key=b"foo")).kvs[0].value == b"1"
            refused(lambda: alice.call(alice.kv.Range, rpc_pb2.RangeRequest(key=b"zoo")), *DENIED)
            root = login(channel, "root", "rootpw")
            status = root.call(root.auth.AuthStatus, rpc_pb2.AuthStatusRequest())
            assert (status.enabled, status.authRevision) == (True, 10)  # 1 + nine changes in setup_users


def test_health_and_metrics_need_no_user(member):
    for path, expected in (("/health", b'"health":"true"'), ("/metrics", b"etcd_server_has_leader")):
        with urllib.request.urlopen(f"{member.url}{path}", timeout=10) as response:
            assert response.status == 200 and expected in response.read()


def test_a_jwt_key_that_cannot_be_used_refuses_the_start(tmp_path):
    material = make_material(tmp_path)
    for token, message in (
        ("jwt,sign-method=RS256,pub-key=/nonexistent", "etcdx: auth: cannot read key file /nonexistent"),
        (f"jwt,sign-method=ES256,priv-key={material.jwt_private}", "etcdx: auth: invalid auth signature method"),
    ):
        server = secured(tmp_path, material, etcdx=True, tls=False, token="simple")
        argv = [*server.argv[: server.argv.index("--auth-token") + 1], token]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and message in done.stderr
