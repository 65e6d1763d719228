"""gRPC-over-HTTP/2 details for the native bench client: request headers, length-prefixed messages and the
status of a finished call as the error label the report counts. Pure."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

# grpc status code -> name, as grpcio's StatusCode names them (the report's error labels use these)
STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
# an HTTP status other than 200 without a grpc-status, mapped as gRPC's HTTP-to-status table does
HTTP_STATUS_CODES = {b"400": 13, b"401": 16, b"403": 7, b"404": 12, b"429": 14, b"502": 14, b"503": 14, b"504": 14}
UNKNOWN = 2
INTERNAL = 13
MESSAGE_PREFIX = 5  # compressed flag (1 byte) + big-endian length (4 bytes)


def request_headers(scheme: bytes, authority: bytes, path: bytes) -> list[tuple[bytes, bytes]]:
    """The header list of a gRPC request (no deadline, no metadata)."""
    return [
        (b":method", b"POST"),
        (b":scheme", scheme),
        (b":path", path),
        (b":authority", authority),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]


def frame_message(message: bytes) -> bytes:
    """One uncompressed gRPC message as it goes in DATA frames."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def split_messages(buffer: bytearray) -> list[bytes]:
    """Removes every complete message from the front of ``buffer`` and returns them (a partial one stays)."""
    messages = []
    at = 0
    while len(buffer) - at >= MESSAGE_PREFIX:
        end = at + MESSAGE_PREFIX + int.from_bytes(buffer[at + 1 : at + MESSAGE_PREFIX], "big")
        if end > len(buffer):
            break
        messages.append(bytes(buffer[at + MESSAGE_PREFIX : end]))
        at = end
    del buffer[:at]
    return messages


def single_message(body: bytes) -> bytes | None:
    """The message of a unary response body, or None when the body is not exactly one whole message."""
    if len(body) < MESSAGE_PREFIX or int.from_bytes(body[1:MESSAGE_PREFIX], "big") != len(body) - MESSAGE_PREFIX:
        return None
    return body[MESSAGE_PREFIX:]


def status_name(code: int) -> str:
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"CODE_{code}"


def label(code: int, message: str) -> str:
    """The report's error label: "CODE_NAME: message"."""
    return f"{status_name(code)}: {message}"


def trailers_error(headers: list[tuple[bytes, bytes]], http_status: bytes | None) -> str | None:
    """None when the trailers (or a Trailers-Only block) carry grpc-status 0, else the error label.

    grpc-message is percent-decoded UTF-8. ``http_status`` is the response's :status when it came in an
    earlier HEADERS block (a Trailers-Only block carries its own)."""
    status = message = None
    for name, value in headers:
        if name == b"grpc-status":
            status = value
        elif name == b"grpc-message":
            message = value
        elif name == b":status":
            http_status = value
    if status == b"0":
        return None
    text = unquote_to_bytes(message).decode("utf-8", "replace") if message else ""
    if status is None:
        if http_status not in (None, b"200"):
            return label(HTTP_STATUS_CODES.get(http_status, UNKNOWN), f"unexpected HTTP status {http_status.decode()}")
        return label(INTERNAL, "server closed the stream without a grpc-status")
    try:
        code = int(status)
    except ValueError:
        return label(UNKNOWN, f"malformed grpc-status {status!r}")
    return label(code, text)
