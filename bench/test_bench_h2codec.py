"""The HTTP/2 frame + HPACK codec (module ``h2codec``): compiled, pure twin, and the hyperframe / hpack
libraries (what the `h2` stack uses) as the reference, side by side in one group per case.

Run: cd /work/main && python setup.py build_ext --inplace && pytest bench/test_bench_h2codec.py --benchmark-only
- frames: FrameReader.feed of the bytes a gRPC client sends for 500 unary calls (HEADERS + DATA each),
  in one piece and in 4 KiB reads; the reference cuts frames with hyperframe as h2 does.
- HPACK decode: 500 request header blocks of one connection, as grpc-go and grpc-python send them (the
  client's encoder uses the dynamic table and Huffman; grpc-timeout on every other call, each value
  new), decoded on one decoder, so after the first block most fields are dynamic-table indexes.
- HPACK encode: response headers and trailers of 500 unary calls on one encoder.
The "compiled" case is skipped only when the extension is not built.
"""

from __future__ import annotations

import importlib

import hpack
import pytest
from hyperframe.frame import Frame

IMPLEMENTATIONS = {"compiled": "etcdx._native._h2codec", "pure": "etcdx._native.h2codec_py"}
CALLS = 500
RANGE_REQUEST = b"\x0a\x03foo"  # etcdserverpb.RangeRequest{key: "foo"}

CLIENT_HEADERS = {
    "grpc-go": [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Range"),
        (b":authority", b"127.0.0.1:2379"),
        (b"content-type", b"application/grpc"),
        (b"user-agent", b"grpc-go/1.58.3"),
        (b"te", b"trailers"),
    ],
    "grpc-python": [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Range"),
        (b":authority", b"127.0.0.1:2379"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"user-agent", b"grpc-python/1.70.0 grpc-c/45.0.0 (linux; chttp2)"),
        (b"grpc-accept-encoding", b"identity,deflate,gzip"),
    ],
}
RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]


def implementation(name: str):
    if name in IMPLEMENTATIONS:
        try:
            return importlib.import_module(IMPLEMENTATIONS[name])
        except ImportError:
            pytest.skip("the _h2codec extension is not built")
    return None  # the library reference


def request_blocks(client: str) -> list[bytes]:
    """CALLS header blocks from one client encoder; every other call carries a fresh grpc-timeout."""
    encoder = hpack.Encoder()
    blocks = []
    for call in range(CALLS):
        headers = list(CLIENT_HEADERS[client])
        if call % 2:
            headers.append((b"grpc-timeout", b"%dm" % (4999 - call)))
        blocks.append(encoder.encode(headers))
    return blocks


def calls_bytes() -> bytes:
    """What a grpc-go client writes for CALLS unary Range calls, streams 1, 3, 5, ..."""
    codec = importlib.import_module(IMPLEMENTATIONS["pure"])
    message = b"\0" + len(RANGE_REQUEST).to_bytes(4, "big") + RANGE_REQUEST
    out = []
    for call, block in enumerate(request_blocks("grpc-go")):
        stream_id = 2 * call + 1
        out.append(codec.encode_frame(codec.HEADERS, codec.FLAG_END_HEADERS, stream_id, block))
        out.append(codec.encode_frame(codec.DATA, codec.FLAG_END_STREAM, stream_id, message))
    return b"".join(out)


def hyperframe_feed(data: bytes) -> tuple[list[Frame], int]:
    """The reference: the frames in data, cut and parsed with hyperframe as h2's FrameBuffer does, and
    how many bytes they took."""
    view = memoryview(data)
    frames = []
    pos = 0
    while len(view) - pos >= 9:
        frame, length = Frame.parse_frame_header(view[pos : pos + 9])
        if len(view) - pos - 9 < length:
            break
        frame.parse_body(view[pos + 9 : pos + 9 + length])
        frames.append(frame)
        pos += 9 + length
    return frames, pos


@pytest.mark.parametrize("read_size", [None, 4096], ids=["one-piece", "4KiB-reads"])
@pytest.mark.parametrize("impl", ["compiled", "pure", "hyperframe"])
def test_frame_reader_feed(benchmark, impl, read_size):
    codec = implementation(impl)
    data = calls_bytes()
    step = read_size or len(data)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    benchmark.group = f"h2codec frames: feed {CALLS} unary calls ({len(data)} bytes, {read_size or 'one'} per read)"
    if codec is None:

        def run():
            frames, rest = [], b""
            for chunk in chunks:
                buffered = rest + chunk
                got, used = hyperframe_feed(buffered)
                rest = buffered[used:]
                frames += got
            return frames

    else:

        def run():
            reader = codec.FrameReader()
            return [frame for chunk in chunks for frame in reader.feed(chunk)]

    assert len(benchmark(run)) == 2 * CALLS


@pytest.mark.parametrize("client", list(CLIENT_HEADERS))
@pytest.mark.parametrize("impl", ["compiled", "pure", "hpack"])
def test_hpack_decode_requests(benchmark, impl, client):
    codec = implementation(impl)
    blocks = request_blocks(client)
    benchmark.group = f"h2codec HPACK decode: {CALLS} {client} request header blocks, one decoder"
    if codec is None:

        def run():
            decoder = hpack.Decoder()
            return [decoder.decode(block, raw=True) for block in blocks]

    else:

        def run():
            decoder = codec.HpackDecoder()
            return [decoder.decode(block) for block in blocks]

    decoded = benchmark(run)
    assert [list(map(tuple, h)) for h in decoded[:2]] == [
        CLIENT_HEADERS[client],
        CLIENT_HEADERS[client] + [(b"grpc-timeout", b"4998m")],
    ]


@pytest.mark.parametrize("impl", ["compiled", "pure", "hpack"])
def test_hpack_encode_responses(benchmark, impl):
    codec = implementation(impl)
    benchmark.group = f"h2codec HPACK encode: response headers + trailers x {CALLS}, one encoder"
    encoder_class = hpack.Encoder if codec is None else codec.HpackEncoder

    def run():
        encoder = encoder_class()
        return [encoder.encode(headers) for _ in range(CALLS) for headers in (RESPONSE_HEADERS, TRAILERS)]

    blocks = benchmark(run)
    decoder = hpack.Decoder()
    assert [decoder.decode(block, raw=True) for block in blocks[:4]] == [RESPONSE_HEADERS, TRAILERS] * 2
