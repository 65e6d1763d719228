"""etcdx's peer transport: Raft messages between members over --listen-peer-urls.

  codec.py            etcdx.raft.Message <-> protobuf (etcdxpb.Message) inside a PeerFrame envelope
                      (cluster id, sender id, receiver id); length-prefixed framing with a maximum size
  snapshot_stream.py  a snapshot's data as 1 MiB zstandard-compressed chunks with a SHA-256, and its assembly
  transport.py        PeerTransport on trio: per-peer bounded queues and connections, snapshot streaming,
                      the receiving side with its refusals
  client_tls.py       the ssl context for https:// peer URLs, from the peer TLS settings (as etcd)
  join.py             fetch_members: a member joining a running cluster asks a peer for the membership

Interface for the server (the shell of the Raft core):

    transport = PeerTransport(member_id, cluster_id, {peer_id: [peer urls]},
                              on_message=..., on_unreachable=..., on_snapshot_status=...,
                              client_tls=peer_client_context(peer TlsSettings, auto_tls=--peer-auto-tls)
                                         when a peer URL is https://, else None)
    await nursery.start(transport.run)                  # owns its tasks; cancel to stop
    await nursery.start(partial(hold_peer_port, host, port, tls=..., handler=transport.handle_connection))
    transport.send(rd.messages)                         # never blocks; before the fsync as etcd does
    transport.send(rd.persisted_messages)               # after it
    transport.add_peer(id, urls) / update_peer(id, urls) / remove_peer(id)   # on applied conf changes

- on_message(message): a Message from a peer of this cluster addressed to this member (MsgSnap with its
  whole snapshot data): step it into the RawNode.
- on_unreachable(peer_id): a message to that peer was dropped (queue full) or its connection failed:
  RawNode.report_unreachable. May be called from inside send().
- on_snapshot_status(peer_id, failed): the outcome of a MsgSnap sent: RawNode.report_snapshot.
Callbacks must not block; an exception from one is logged and swallowed.
"""

from etcdx.peer.transport import PeerTransport

__all__ = ["PeerTransport"]
