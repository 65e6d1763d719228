"""Joining a running cluster (--initial-cluster-state existing): ask the other members, over their peer URLs,
for the membership and the cluster id, as etcd asks its peers for /members."""

from __future__ import annotations

import ssl

import trio
from google.protobuf.message import DecodeError

from etcdx.pb.etcdserverpb import rpc_pb2
from etcdx.pb.etcdxpb import raft_pb2
from etcdx.peer.codec import DEFAULT_MAX_FRAME, CodecError, encode_frame
from etcdx.peer.transport import open_peer_stream, read_one_frame


class JoinError(Exception):
    """No member answered with the membership; the message says what each URL did."""


async def fetch_members(
    peer_urls: list[str], client_tls: ssl.SSLContext | None, timeout: float = 2.0
) -> rpc_pb2.MemberListResponse:
    """The first answer of a member at one of ``peer_urls``, tried in order (each within ``timeout``)."""
    failures = []
    for url in peer_urls:
        try:
            with trio.fail_after(timeout):
                stream = await open_peer_stream(url, client_tls)
                try:
                    await stream.send_all(encode_frame(raft_pb2.PeerFrame(members_request=True)))
                    frame = await read_one_frame(stream, DEFAULT_MAX_FRAME)
                finally:
                    await trio.aclose_forcefully(stream)
            if frame is None or frame.WhichOneof("body") != "members":
                raise CodecError("no membership in the answer")
            return rpc_pb2.MemberListResponse.FromString(frame.members)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError, CodecError, DecodeError) as exc:
            failures.append(f"{url}: {exc!r}")
    raise JoinError("could not retrieve cluster information from the given URLs: " + "; ".join(failures))
