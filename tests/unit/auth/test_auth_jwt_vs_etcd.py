"""JWT tokens are etcd's: a token etcd 3.5.1 signs reads back as the same user and revision here, and
a token JwtTokens signs with the same key is accepted by etcd 3.5.1; the --auth-token string that
configures etcd configures JwtTokens."""

from __future__ import annotations

import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from etcdx.auth import AuthInfo
from etcdx.auth.jwt_token import JwtTokens
from etcdx.auth.options import parse_auth_token
from etcdx.pb.etcdserverpb import rpc_pb2 as pb
from etcdx.pb.etcdserverpb import rpc_pb2_grpc
from tests.support.procs import etcd_process


def new_key(method: str):
    if method.startswith("RS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(private) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_keys(tmp_path, private) -> tuple[str, str]:
    priv = tmp_path / "priv.pem"
    pub = tmp_path / "pub.pem"
    priv.write_bytes(private_pem(private))
    pub.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return str(pub), str(priv)


@pytest.mark.parametrize("method", ["RS256", "ES256"])
def test_tokens_cross_between_etcd_and_jwt_tokens(tmp_path, method):
    pub, priv = write_keys(tmp_path, new_key(method))
    option = f"jwt,pub-key={pub},priv-key={priv},sign-method={method},ttl=10m"
    opts = parse_auth_token(option)
    with open(opts.public_key_path, "rb") as f_pub, open(opts.private_key_path, "rb") as f_priv:
        ours = JwtTokens(
            opts.sign_method, public_key=f_pub.read(), private_key=f_priv.read(), ttl_seconds=opts.ttl_seconds
        )

    server = etcd_process(tmp_path, extra_args=("--bcrypt-cost", "4", "--auth-token", option))
    with server.start(), grpc.insecure_channel(server.endpoint) as channel:
        auth, kv = rpc_pb2_grpc.AuthStub(channel), rpc_pb2_grpc.KVStub(channel)
        auth.UserAdd(pb.AuthUserAddRequest(name="root", password="pw"))
        auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user="root", role="root"))
        auth.AuthEnable(pb.AuthEnableRequest())
        revision = 3  # etcd starts at 1; UserAdd and UserGrantRole each add one, AuthEnable none
        theirs = auth.Authenticate(pb.AuthenticateRequest(name="root", password="pw")).token
        now = time.time()
        assert ours.info(theirs, now, revision) == AuthInfo("root", revision)
        mine = ours.assign("root", revision, now)
        kv.Put(pb.PutRequest(key=b"k", value=b"v"), metadata=(("token", mine),))
        assert kv.Range(pb.RangeRequest(key=b"k"), metadata=(("token", mine),)).count == 1
        forged = JwtTokens(method, private_key=private_pem(new_key(method))).assign("root", revision, now)
        with pytest.raises(grpc.RpcError) as e:
            kv.Range(pb.RangeRequest(key=b"k"), metadata=(("token", forged),))
        assert e.value.details() == "etcdserver: invalid auth token"
