"""Simple and JWT tokens, and --auth-token parsing as etcd parses it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from etcdx import errors
from etcdx.auth import AuthInfo
from etcdx.auth.jwt_token import JwtTokens
from etcdx.auth.options import AuthOptionsError, TokenOptions, parse_auth_token, parse_go_duration
from etcdx.auth.simple_token import SimpleTokens, new_prefix


def pem_pair(private) -> tuple[bytes, bytes]:
    priv = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pub, priv


@pytest.fixture(scope="module")
def rsa_keys():
    return pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def other_rsa_keys():
    return pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def keys_for(method, rsa_keys):
    return pem_pair(ec.generate_private_key(CURVES[method])) if method in CURVES else rsa_keys


# -- simple -----------------------------------------------------------------------------------


def test_simple_token_format_ttl_refresh_and_expiry():
    tokens = SimpleTokens(ttl_seconds=10)
    tokens.enable()
    prefix = new_prefix(random.Random(3))
    assert len(prefix) == 16 and prefix.isalpha()
    token = tokens.assign("alice", 4, 100.0, simple_prefix=prefix, index=42)
    assert token == f"{prefix}.42"
    assert tokens.info(token, 105.0, 9) == AuthInfo("alice", 9)  # the store's current revision is stamped
    assert tokens.info(token, 114.0, 9) == AuthInfo("alice", 9)  # each use extends the life by the TTL
    with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN) as e:
        tokens.info(token, 124.5, 9)
    assert (e.value.code, e.value.message) == (16, "etcdserver: invalid auth token")
    with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
        tokens.info("made.up", 0.0, 9)


def test_simple_tokens_die_on_disable_and_are_purged():
    tokens = SimpleTokens(ttl_seconds=10)
    tokens.enable()
    t1 = tokens.assign("a", 1, 0.0, simple_prefix="x" * 16, index=1)
    tokens.assign("b", 1, 5.0, simple_prefix="y" * 16, index=2)
    assert tokens.purge_expired(12.0) == 1 and len(tokens) == 1
    tokens.disable()
    assert len(tokens) == 0
    tokens.enable()
    with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
        tokens.info(t1, 1.0, 1)


def test_simple_tokens_per_user_are_capped_oldest_evicted():
    tokens = SimpleTokens(ttl_seconds=100, max_tokens_per_user=3)
    tokens.enable()
    made = [tokens.assign("loop", 1, float(i), simple_prefix="p" * 16, index=i) for i in range(5)]
    other = tokens.assign("other", 1, 0.0, simple_prefix="q" * 16, index=99)
    assert len(tokens) == 4
    for token in made[:2]:
        with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
            tokens.info(token, 6.0, 1)
    assert [tokens.info(t, 6.0, 1).username for t in made[2:]] == ["loop"] * 3
    assert tokens.info(other, 6.0, 1).username == "other"
    tokens.invalidate_user("loop")
    assert len(tokens) == 1


# -- jwt --------------------------------------------------------------------------------------

METHODS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


@pytest.mark.parametrize("method", METHODS)
def test_jwt_round_trip_carries_username_revision_and_exp(method, rsa_keys):
    pub, priv = keys_for(method, rsa_keys)
    tokens = JwtTokens(method, public_key=pub, private_key=priv, ttl_seconds=300)
    token = tokens.assign("alice", 7, 1_000_000.0)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"username": "alice", "revision": 7, "exp": 1_000_300}
    assert jwt.get_unverified_header(token)["alg"] == method
    assert tokens.info(token, 1_000_299.0, 99) == AuthInfo("alice", 7)  # the token's revision, not the store's
    verifier = JwtTokens(method, public_key=pub)  # verify-only member
    assert verifier.info(token, 1_000_000.0, 0) == AuthInfo("alice", 7)
    with pytest.raises(errors.ERR_VERIFY_ONLY) as e:
        verifier.assign("alice", 7, 0.0)
    assert e.value.message == "auth: token signing attempted with verify-only key"


def test_jwt_expired_refused(rsa_keys):
    pub, priv = rsa_keys
    tokens = JwtTokens("RS256", public_key=pub, private_key=priv, ttl_seconds=60)
    token = tokens.assign("alice", 1, 1000.0)
    assert tokens.info(token, 1060.0, 1).username == "alice"
    with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
        tokens.info(token, 1060.5, 1)


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_jwt_alg_none_refused(rsa_keys):
    pub, priv = rsa_keys
    tokens = JwtTokens("RS256", public_key=pub, private_key=priv)
    claims = {"username": "root", "revision": 1, "exp": 10**10}
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "RS256", "typ": "JWT"}):
        forged = f"{_b64(header)}.{_b64(claims)}."
        with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
            tokens.info(forged, 0.0, 1)


def test_jwt_signed_with_another_key_or_method_refused(rsa_keys, other_rsa_keys):
    pub, priv = rsa_keys
    tokens = JwtTokens("RS256", public_key=pub, private_key=priv)
    claims = {"username": "root", "revision": 1, "exp": 10**10}
    forged = [
        jwt.encode(claims, serialization.load_pem_private_key(other_rsa_keys[1], None), algorithm="RS256"),
        jwt.encode(claims, serialization.load_pem_private_key(priv, None), algorithm="PS256"),  # same key, other alg
        "not-a-jwt",
        tokens.assign("root", 1, 0.0)[:-4] + "AAAA",  # tampered signature
    ]
    for token in forged:
        with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
            tokens.info(token, 0.0, 1)


def test_jwt_hmac_with_public_key_as_secret_refused(rsa_keys):
    pub, priv = rsa_keys
    tokens = JwtTokens("RS256", public_key=pub, private_key=priv)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"username": "root", "revision": 1, "exp": 10**10}
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    sig = hmac.new(pub, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
        tokens.info(forged, 0.0, 1)


def test_jwt_missing_or_malformed_claims_refused(rsa_keys):
    pub, priv = rsa_keys
    key = serialization.load_pem_private_key(priv, None)
    tokens = JwtTokens("RS256", public_key=pub, private_key=priv)
    for claims in (
        {"username": "root", "exp": 10**10},
        {"revision": 1, "exp": 10**10},
        {"username": "root", "revision": 1},
        {"username": "", "revision": 1, "exp": 10**10},
        {"username": "root", "revision": "1", "exp": 10**10},
        {"username": "root", "revision": True, "exp": 10**10},
    ):
        with pytest.raises(errors.ERR_INVALID_AUTH_TOKEN):
            tokens.info(jwt.encode(claims, key, algorithm="RS256"), 0.0, 1)


def test_jwt_key_configuration_errors(rsa_keys, other_rsa_keys):
    pub, priv = rsa_keys
    ec_pub, _ = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    cases = [
        (dict(sign_method="RS256"), "auth: missing key data"),
        (dict(sign_method="none", public_key=pub), "auth: invalid auth signature method"),
        (dict(sign_method="HS256", public_key=pub), "auth: invalid auth signature method"),
        (dict(sign_method="ES256", public_key=pub), "auth: invalid auth signature method"),
        (dict(sign_method="RS256", public_key=ec_pub), "auth: invalid auth signature method"),
        (dict(sign_method="RS256", public_key=other_rsa_keys[0], private_key=priv), "auth: public and private keys"),
        (dict(sign_method="RS256", public_key=b"garbage"), "auth: cannot read key"),
    ]
    for kwargs, text in cases:
        method = kwargs.pop("sign_method")
        with pytest.raises(AuthOptionsError) as e:
            JwtTokens(method, **kwargs)
        assert str(e.value).startswith(text)
    signer_only = JwtTokens("RS256", private_key=priv)  # the public key is derived from the private one
    assert signer_only.info(signer_only.assign("u", 1, 0.0), 0.0, 1) == AuthInfo("u", 1)


# -- --auth-token -------------------------------------------------------------------------------


def test_parse_auth_token_as_etcd():
    assert parse_auth_token("simple") == TokenOptions("simple")
    assert parse_auth_token("") == TokenOptions("")
    assert parse_auth_token("jwt,pub-key=/p.pem,priv-key=/k.pem,sign-method=RS256,ttl=5m") == TokenOptions(
        "jwt", "RS256", "/p.pem", "/k.pem", 300.0
    )
    assert parse_auth_token("jwt,sign-method=ES384,pub-key=/p").ttl_seconds == 300.0
    assert parse_auth_token("jwt,sign-method=PS512,priv-key=/k,ttl=1h30m").ttl_seconds == 5400.0
    for bad, text in (
        ("jwt,sign-method=RS256,ttl=5m,ttl=6m", "auth: invalid auth options"),
        ("jwt,sign-method", "auth: invalid auth options"),
        ("jwt,sign-method=a=b", "auth: invalid auth options"),
        ("jwt,", "auth: invalid auth options"),
        ("oauth", "auth: invalid auth options"),
        ("jwt,pub-key=/p", "auth: invalid auth signature method"),
        ("jwt,sign-method=RS256,ttl=5", "auth: invalid auth options"),
        ("jwt,sign-method=RS256,color=red", "unknown token option: color"),
    ):
        with pytest.raises(AuthOptionsError) as e:
            parse_auth_token(bad)
        assert str(e.value) == text, bad


def test_go_durations():
    assert parse_go_duration("300s") == 300.0
    assert parse_go_duration("1.5h") == 5400.0
    assert parse_go_duration("2m30s") == 150.0
    assert parse_go_duration("100ms") == pytest.approx(0.1)
    assert parse_go_duration("0") == 0.0 and parse_go_duration("-1m") == -60.0
    for bad in ("", "5", "m", "5x", "1h-1m", "s5"):
        with pytest.raises(ValueError):
            parse_go_duration(bad)
