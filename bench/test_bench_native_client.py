"""The native bench client's own cost per request, without a network: 64 put clients on one HTTP/2
connection whose transport only counts writes; each round feeds the responses to every open call in one
read (HEADERS, DATA, trailers each, HPACK-encoded with a dynamic table as Go's gRPC server does) and the
clients send their next puts. A round is 64 requests; divide by 64 for the client's CPU per request
(the asyncio loop and the socket calls come on top in a real run).

Run: cd /work/main && python setup.py build_ext --inplace && pytest bench/test_bench_native_client.py --benchmark-only
"""

from __future__ import annotations

import asyncio
import importlib
import random
from types import SimpleNamespace

import hpack
import pytest

from etcdx.cli.bench import h2client, native_worker
from etcdx.cli.bench.native_requests import SCENARIOS

IMPLEMENTATIONS = {"compiled": "etcdx._native._h2codec", "twin": "etcdx._native.h2codec_py"}
CLIENTS = 64
RESPONSE = b"\x0a\x0c\x08\x01\x10\x02\x18\x03\x20\x04\x28\x05"  # a PutResponse-sized message


class CountingTransport:
    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def responses(codec, encoder: hpack.Encoder, stream_ids: list[int]) -> bytes:
    frames = []
    for stream_id in stream_ids:
        headers = encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
        frames.append(codec.encode_frame(codec.HEADERS, codec.FLAG_END_HEADERS, stream_id, headers))
        message = b"\x00" + len(RESPONSE).to_bytes(4, "big") + RESPONSE
        frames.append(codec.encode_frame(codec.DATA, 0, stream_id, message))
        trailers = encoder.encode([("grpc-status", "0"), ("grpc-message", "")])
        flags = codec.FLAG_END_HEADERS | codec.FLAG_END_STREAM
        frames.append(codec.encode_frame(codec.HEADERS, flags, stream_id, trailers))
    window = (64 * len(stream_ids)).to_bytes(4, "big")  # the server gives back what the requests used
    frames.append(codec.encode_frame(codec.WINDOW_UPDATE, 0, 0, window))
    return b"".join(frames)


@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
def test_put_round_of_64_responses_and_requests(benchmark, implementation, monkeypatch):
    try:
        codec = importlib.import_module(IMPLEMENTATIONS[implementation])
    except ImportError:
        pytest.skip("extension not built")
    monkeypatch.setattr(h2client, "h2", codec)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def build():
        options = SimpleNamespace(key_size=8, val_size=8, key_space_size=100_000, sequential_keys=False)
        options.duration, options.rate, options.processes = 0, 0, 1
        connection = h2client.Connection("127.0.0.1:2379", False)
        connection.connection_made(CountingTransport())
        connection.data_received(codec.encode_frame(codec.SETTINGS, 0, 0, b""))
        run = native_worker.Run(options, CLIENTS, 1 << 40, None)
        channel = SimpleNamespace(connection=connection)
        for n in range(CLIENTS):
            native_worker.UnaryClient(run, channel, SCENARIOS["put"](options, random.Random(n), n)).start()
        connection._flush()
        return connection, run

    connection, run = loop.run_until_complete(build())
    encoder = hpack.Encoder()

    def setup():
        return (responses(codec, encoder, sorted(connection.calls)),), {}

    benchmark.pedantic(connection.data_received, setup=setup, rounds=2000, warmup_rounds=20)
    loop.close()
    assert run.errors == {} and run.done == 2020 * CLIENTS and len(connection.calls) == CLIENTS
