"""The token provider --auth-token names, built at start-up (reading the JWT key files it names)."""

from __future__ import annotations

from etcdx.auth import jwt_token, options, simple_token
from etcdx.auth.tokens import TokenProvider


def token_provider(auth_token: str, simple_ttl_seconds: int) -> TokenProvider:
    """SimpleTokens for "simple" (and for "", as etcd then hands out no token but still needs a provider),
    JwtTokens for "jwt,..."; raises AuthOptionsError (the start is refused) for a bad value or key."""
    opts = options.parse_auth_token(auth_token)
    if opts.kind != options.JWT:
        return simple_token.SimpleTokens(float(simple_ttl_seconds))
    public = _read(opts.public_key_path)
    private = _read(opts.private_key_path)
    return jwt_token.JwtTokens(opts.sign_method, public_key=public, private_key=private, ttl_seconds=opts.ttl_seconds)


def _read(path: str) -> bytes:
    if not path:
        return b""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise options.AuthOptionsError(f"auth: cannot read key file {path}: {exc.strerror}") from exc
