"""etcd's v2 error codes (v2error): exact messages, the HTTP status each maps to, and the JSON body."""

from __future__ import annotations

from etcdx.v2store.gojson import encode

KEY_NOT_FOUND = 100
TEST_FAILED = 101
NOT_FILE = 102
NOT_DIR = 104
NODE_EXIST = 105
ROOT_READ_ONLY = 107
DIR_NOT_EMPTY = 108
UNAUTHORIZED = 110
PREV_VALUE_REQUIRED = 201
TTL_NAN = 202
INDEX_NAN = 203
INVALID_FIELD = 209
INVALID_FORM = 210
REFRESH_VALUE = 211
REFRESH_TTL_REQUIRED = 212
RAFT_INTERNAL = 300
EVENT_INDEX_CLEARED = 401

MESSAGES = {
    100: "Key not found",
    101: "Compare failed",
    102: "Not a file",
    103: "Reached the max number of peers in the cluster",
    104: "Not a directory",
    105: "Key already exists",
    106: "The prefix of given key is a keyword in etcd",
    107: "Root is read only",
    108: "Directory not empty",
    109: "Peer address has existed",
    110: "The request requires user authentication",
    200: "Value is Required in POST form",
    201: "PrevValue is Required in POST form",
    202: "The given TTL in POST form is not a number",
    203: "The given index in POST form is not a number",
    204: "Value or TTL is required in POST form",
    205: "The given timeout in POST form is not a number",
    206: "Name is required in POST form",
    207: "Index or value is required",
    208: "Index and value cannot both be specified",
    209: "Invalid field",
    210: "Invalid POST form",
    211: "Value provided on refresh",
    212: "A TTL must be provided on refresh",
    300: "Raft Internal Error",
    301: "During Leader Election",
    400: "watcher is cleared due to etcd recovery",
    401: "The event in requested index is outdated and cleared",
    402: "Standby Internal Error",
    403: "Invalid active size",
    404: "Standby remove delay",
    500: "Client Internal Error",
}

# Codes not listed answer 400 Bad Request.
_STATUS = {100: 404, 101: 412, 102: 403, 105: 412, 108: 403, 110: 401, 300: 500, 301: 500}


class V2Error(Exception):
    """An etcd v2 error. ``index`` is the store index when it happened (0 for a request that did not parse)."""

    def __init__(self, code: int, cause: str = "", index: int = 0) -> None:
        super().__init__(code, cause, index)
        self.code = code
        self.cause = cause
        self.index = index

    @property
    def message(self) -> str:
        return MESSAGES.get(self.code, "")

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 400)

    def body(self) -> bytes:
        """The JSON body etcd writes, newline-terminated (cause omitted when empty)."""
        fields: dict[str, object] = {"errorCode": self.code, "message": self.message}
        if self.cause:
            fields["cause"] = self.cause
        fields["index"] = self.index
        return encode(fields) + b"\n"

    def __str__(self) -> str:
        return f"{self.code}: {self.message} ({self.cause}) [{self.index}]"
