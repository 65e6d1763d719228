"""The file `etcdctl snapshot save` writes from an etcdx member, and how to take it apart. Pure.

Layout: a backend image (backend_image: one zstandard frame), then a zstandard skippable frame of zeros that
pads the image to a multiple of PAGE bytes, then the SHA-256 of everything before it. etcd's clients and
etcdutl find the digest by that rule (a file of ``k * 512 + 32`` bytes ends with one: bbolt files are
whole pages) and etcdctl refuses a stream without it, so the padding is needed; a skippable frame keeps
the body a valid zstandard stream.
"""

from __future__ import annotations

import hashlib
import struct

PAGE = 512  # etcdctl's rule: len(file) % 512 == sha256 size means the file ends with its digest
DIGEST = 32
_SKIPPABLE = 0x184D2A50  # the first of zstandard's skippable-frame magic numbers
_FRAME_HEAD = struct.Struct("<II")


def padded(image: bytes) -> bytes:
    """``image`` followed by the skippable frame that makes its length a multiple of PAGE."""
    room = -(len(image) + _FRAME_HEAD.size) % PAGE
    return image + _FRAME_HEAD.pack(_SKIPPABLE, room) + bytes(room)


def has_digest(data: bytes) -> bool:
    """Whether ``data`` ends with a SHA-256 by etcd's rule (its length is k * 512 + 32)."""
    return len(data) % PAGE == DIGEST


def digest_matches(data: bytes) -> bool:
    """Whether the last DIGEST bytes of ``data`` are the SHA-256 of the rest."""
    return hashlib.sha256(data[:-DIGEST]).digest() == data[-DIGEST:]


def image_of(body: bytes) -> bytes:
    """The backend image of a body written by ``padded`` (its digest already removed); ValueError if the
    body does not end with exactly one padding frame."""
    for room in range(PAGE):  # exactly one room fits: the frame's zeros cannot hold its magic
        start = len(body) - _FRAME_HEAD.size - room
        if start < 0:
            break
        if _FRAME_HEAD.unpack_from(body, start) == (_SKIPPABLE, room) and not any(body[start + _FRAME_HEAD.size :]):
            return body[:start]
    raise ValueError("snapshot: no padding frame after the backend image")
