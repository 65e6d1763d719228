"""etcd's access controller in front of the whole client HTTP mux (v2, /v3 gateway, /health, /version, /metrics):
--host-whitelist and --cors.

- On a plain (non-TLS) connection, a Host (its name, without the port) not in the whitelist is refused with 421
  and etcd's text about DNS rebinding (CVE-2018-5702); an empty whitelist or one holding "*" allows every host.
- CORS headers go on every answer when --cors allows "*" (origin "*"), else when it allows the request's
  Origin (that origin); an empty --cors allows every origin.
- OPTIONS on any path is answered 200 with no body, after the headers above.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcdx.net.http1 import HttpRequest, HttpResponse

_CORS_METHODS = ("access-control-allow-methods", "POST, GET, OPTIONS, PUT, DELETE")
_CORS_HEADERS = ("access-control-allow-headers", "accept, content-type, authorization")


def _misdirected_text(host: str) -> str:
    return f"""
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist {_go_quote(host)}

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
"""


def _go_quote(text: str) -> str:
    """Go's %q for the printable host names a Host header carries."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hostname(host_header: str) -> str:
    """Go's net.SplitHostPort host part of ``host_header``, or the whole of it when it has no port."""
    if host_header.startswith("["):
        end = host_header.find("]")
        if end > 0 and host_header[end + 1 : end + 2] == ":":
            return host_header[1:end]
        return host_header
    name, colon, port = host_header.rpartition(":")
    if not colon or ":" in name:
        return host_header
    return name


@dataclass(frozen=True)
class AccessControl:
    cors: frozenset[str] = frozenset(["*"])
    host_whitelist: frozenset[str] = frozenset(["*"])

    def host_allowed(self, host: str) -> bool:
        return not self.host_whitelist or "*" in self.host_whitelist or host in self.host_whitelist

    def cors_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin to send, or None for no CORS headers."""
        if not self.cors or "*" in self.cors:
            return "*"
        if origin is not None and origin in self.cors:
            return origin
        return None

    def refusal(self, request: HttpRequest, secure: bool) -> HttpResponse | None:
        """The 421 for a plain request whose Host is not allowed, or None."""
        if secure:
            return None
        host = hostname(_header(request, "host") or "")
        if self.host_allowed(host):
            return None
        headers = [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")]
        return HttpResponse(421, headers, (_misdirected_text(host) + "\n").encode())

    def cors_headers(self, request: HttpRequest) -> list[tuple[str, str]]:
        origin = self.cors_origin(_header(request, "origin"))
        if origin is None:
            return []
        return [_CORS_METHODS, ("access-control-allow-origin", origin), _CORS_HEADERS]


def _header(request: HttpRequest, name: str) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return None
