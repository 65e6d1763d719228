"""The body of a /v2/members POST or PUT, read as etcd 3.4 reads it: ``{"peerURLs": [...]}`` through Go's
json.Unmarshal (the key matched case-insensitively, the last one winning, other keys ignored) and then
types.NewURLs. ``peer_urls`` returns the URLs sorted (NewURLs sorts them) or raises ``BadMemberRequest`` with
the text etcd answers 400 with: Go's JSON error, or the first URL NewURLs refuses."""

from __future__ import annotations

from urllib.parse import urlsplit

from etcdx.api.http.gateway_scan import GoJsonError, Node, unmarshal

_FIELD = "Go struct field .peerURLs"
_STRUCT = 'struct { PeerURLs []string "json:\\"peerURLs\\"" }'


class BadMemberRequest(Exception):
    """The message etcd answers with, status 400."""


def peer_urls(body: bytes) -> list[str]:
    try:
        node = unmarshal(body)
    except GoJsonError as exc:
        raise BadMemberRequest(str(exc)) from None
    if node.kind == "null":
        raise BadMemberRequest("no valid URLs given")
    if node.kind != "object":
        raise BadMemberRequest(f"json: cannot unmarshal {node.kind} into Go value of type {_STRUCT}")
    found: Node | None = None
    for key, value in node.value:
        if key.lower() == "peerurls":
            found = value
    urls: list[str] = []
    if found is not None and found.kind != "null":
        if found.kind != "array":
            raise BadMemberRequest(f"json: cannot unmarshal {_kind(found)} into {_FIELD} of type []string")
        for item in found.value:
            if item.kind not in ("string", "null"):
                raise BadMemberRequest(f"json: cannot unmarshal {_kind(item)} into {_FIELD} of type string")
            urls.append(item.value or "")
    return _new_urls(urls)


def _kind(node: Node) -> str:
    return {"bool": "bool", "number": "number", "string": "string", "array": "array", "object": "object"}[node.kind]


def _new_urls(urls: list[str]) -> list[str]:
    """etcd's types.NewURLs: scheme, then host:port, then no path; sorted."""
    if not urls:
        raise BadMemberRequest("no valid URLs given")
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise BadMemberRequest(f'parse "{url}": {exc}') from None
        if parts.scheme not in ("http", "https", "unix", "unixs"):
            raise BadMemberRequest(f"URL scheme must be http, https, unix, or unixs: {url}")
        host, sep, port = parts.netloc.rpartition(":")
        if not sep or (host.count(":") and not (host.startswith("[") and host.endswith("]"))) or "@" in host:
            raise BadMemberRequest(f'URL address does not have the form "host:port": {url}')
        if parts.path:
            raise BadMemberRequest(f"URL must not contain a path: {url}")
    return sorted(urls)
