"""etcd's "jwt" tokens: signed claims {"username", "revision", "exp"}, checked with the member's key (PyJWT).

Sign methods: RS256/384/512 and PS256/384/512 with RSA keys, ES256/384/512 with EC keys, given as
PEM bytes (the caller reads the pub-key / priv-key files). With a private key the member signs and
verifies; with only a public key it verifies and refuses to sign (etcd's verify-only mode).

A token is accepted only if its header names the configured method (so "none" and any other
method are refused), its signature checks with the member's key, its "exp" is not past ``now``
(seconds, passed in), and it carries a non-empty user name and an integer revision. The revision
is the auth revision at Authenticate: after any change to users or roles every earlier token is
refused in apply as "revision of auth store is old", and the client must authenticate again.
"""

from __future__ import annotations

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from etcdx import errors
from etcdx.auth.options import AuthOptionsError
from etcdx.auth.tokens import AuthInfo

RSA_METHODS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_METHODS = ("ES256", "ES384", "ES512")

ERR_MISSING_KEY = "auth: missing key data"
ERR_KEY_MISMATCH = "auth: public and private keys don't match"
ERR_INVALID_AUTH_METHOD = "auth: invalid auth signature method"

_DECODE_OPTIONS = {
    "verify_signature": True,
    "verify_exp": False,  # checked against the ``now`` passed in, not the library's clock
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "require": ["exp", "username", "revision"],
}


class JwtTokens:
    """Stateless JWT tokens; ``enable``/``disable``/``invalidate_user`` have nothing to forget."""

    def __init__(
        self, sign_method: str, *, public_key: bytes = b"", private_key: bytes = b"", ttl_seconds: float = 300.0
    ) -> None:
        if sign_method in RSA_METHODS:
            key_type: type = rsa.RSAPublicKey
        elif sign_method in EC_METHODS:
            key_type = ec.EllipticCurvePublicKey
        else:
            raise AuthOptionsError(ERR_INVALID_AUTH_METHOD)
        self._method = sign_method
        self._ttl = ttl_seconds
        self._signing_key = None
        public = None
        try:
            if private_key:
                self._signing_key = serialization.load_pem_private_key(private_key, password=None)
            if public_key:
                public = serialization.load_pem_public_key(public_key)
        except ValueError as exc:
            raise AuthOptionsError(f"auth: cannot read key: {exc}") from exc
        if self._signing_key is None and public is None:
            raise AuthOptionsError(ERR_MISSING_KEY)
        derived = self._signing_key.public_key() if self._signing_key is not None else None
        if public is not None and derived is not None and _public_numbers(public) != _public_numbers(derived):
            raise AuthOptionsError(ERR_KEY_MISMATCH)
        self._verify_key = public if public is not None else derived
        if not isinstance(self._verify_key, key_type):
            raise AuthOptionsError(ERR_INVALID_AUTH_METHOD)

    @property
    def sign_method(self) -> str:
        return self._method

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def invalidate_user(self, username: str) -> None:
        pass

    def assign(self, username: str, revision: int, now: float, *, simple_prefix: str = "", index: int = 0) -> str:
        if self._signing_key is None:
            raise errors.ERR_VERIFY_ONLY
        claims = {"username": username, "revision": revision, "exp": int(now + self._ttl)}
        return jwt.encode(claims, self._signing_key, algorithm=self._method)

    def info(self, token: str, now: float, current_revision: int) -> AuthInfo:
        try:
            if jwt.get_unverified_header(token).get("alg") != self._method:
                raise errors.ERR_INVALID_AUTH_TOKEN
            claims = jwt.decode(token, self._verify_key, algorithms=[self._method], options=_DECODE_OPTIONS)
        except jwt.PyJWTError as exc:
            raise errors.ERR_INVALID_AUTH_TOKEN from exc
        username, revision, exp = claims["username"], claims["revision"], claims["exp"]
        if not isinstance(username, str) or not username:
            raise errors.ERR_INVALID_AUTH_TOKEN
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise errors.ERR_INVALID_AUTH_TOKEN
        if isinstance(exp, bool) or not isinstance(exp, int | float) or exp < now:
            raise errors.ERR_INVALID_AUTH_TOKEN
        return AuthInfo(username, revision)


def _public_numbers(key: object) -> object:
    return key.public_numbers()  # type: ignore[attr-defined]
