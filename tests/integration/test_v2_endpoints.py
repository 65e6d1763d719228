"""The v2 endpoints besides the key operations the campaign covers, against etcd 3.4.23 --enable-v2: members,
machines, stats, HEAD, unclean paths, a streamed watch, and no v2 at all without --enable-v2. Normalised: the
member and cluster IDs, ports, times and uptime (each server has its own)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import threading

import pytest

from tests.support.procs import ETCD_34, etcd34_process, etcdx_process

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD_34) is None and not os.environ.get("CI"), reason="etcd 3.4.23 (Debian etcd-server) missing"
)

REQUESTS = [
    ("PUT", "/v2/keys/k", "value=1"),
    ("HEAD", "/v2/keys/k", None),
    ("HEAD", "/v2/keys/missing", None),
    ("GET", "/v2/keys//k", None),
    ("GET", "/v2/keys/a/../k", None),
    ("PATCH", "/v2/keys/k", None),
    ("GET", "/v2/members", None),
    ("GET", "/v2/members/leader", None),
    ("GET", "/v2/members/other", None),
    ("PATCH", "/v2/members", None),
    ("DELETE", "/v2/members/1234abcd", None),
    ("DELETE", "/v2/members/zz", None),
    ("POST", "/v2/members", "x"),
    ("GET", "/v2/machines", None),
    ("GET", "/v2/stats/leader", None),
    ("GET", "/v2/stats/self", None),
    ("POST", "/v2/stats/self", None),
    ("GET", "/v2/stats/other", None),
    ("GET", "/v2/nothing", None),
]


def normalise(text: str, server) -> str:
    text = text.replace(str(server.client_port), "<client>").replace(str(server.peer_port), "<peer>")
    text = re.sub(r'"(id|leader)":"[0-9a-f]+"', r'"\1":"<id>"', text)
    text = re.sub(r'"[0-9a-f]{6,16}":\{', '"<id>":{', text)
    text = re.sub(r'"(startTime|uptime)":"[^"]+"', r'"\1":"<t>"', text)
    return text


def answers(server) -> list:
    conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=10)
    out = []
    for method, path, body in REQUESTS:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        kept = {k.lower(): v for k, v in response.getheaders() if k.lower() in ("content-type", "location", "allow")}
        text = normalise(data.decode(), server)
        # The declared length is compared where nothing server-specific is in the body.
        length = response.getheader("content-length") if text == data.decode() else "<normalised>"
        out.append((method, path, response.status, kept, length, text))
    conn.close()
    return out


def streamed_watch(server) -> list[dict]:
    """Two sets seen by one wait=true&stream=true request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=10)
    conn.request("GET", "/v2/keys/s?wait=true&stream=true")
    response = conn.getresponse()
    lines: list[bytes] = []

    def read() -> None:
        for _ in range(2):
            lines.append(response.readline())

    reader = threading.Thread(target=read)
    reader.start()
    writer = http.client.HTTPConnection("127.0.0.1", server.client_port, timeout=10)
    for value in ("a", "b"):
        writer.request(
            "PUT", "/v2/keys/s", body=f"value={value}", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        writer.getresponse().read()
    reader.join(timeout=10)
    conn.close()
    writer.close()
    return [json.loads(line) for line in lines]


def test_v2_endpoints_answer_as_etcd_34(tmp_path):
    with etcd34_process(tmp_path, extra_args=("--enable-v2",)).start() as etcd:
        expected = answers(etcd)
        expected_stream = streamed_watch(etcd)
    with etcdx_process(tmp_path, extra_args=("--enable-v2",)).start() as etcdx:
        got = answers(etcdx)
        got_stream = streamed_watch(etcdx)
    for want, have in zip(expected, got, strict=True):
        assert have == want
    assert [e["node"]["value"] for e in got_stream] == ["a", "b"]
    assert got_stream == expected_stream


def test_without_enable_v2_there_is_no_v2(tmp_path):
    with etcdx_process(tmp_path).start() as etcdx:
        conn = http.client.HTTPConnection("127.0.0.1", etcdx.client_port, timeout=10)
        conn.request("GET", "/v2/keys/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (404, b"404 page not found\n")
        conn.close()
