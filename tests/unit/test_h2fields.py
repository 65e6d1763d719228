"""The request and trailer field checks (RFC 9113 8.2, 8.3.1): the loaded module (compiled or twin, by
ETCDX_NO_EXTENSIONS) against known answers, and the compiled module against its twin on random lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdx._native import load
from tests.support.native_pair import compiled_and_twin

h2f = load("h2fields")

GOOD = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/p.S/M"), (b":authority", b""), (b"te", b"trailers")]


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        (GOOD, None),
        (GOOD[:2], "request without :method, :scheme and :path"),
        ([*GOOD, (b":status", b"200")], "pseudo-header b':status' is not a request pseudo-header"),
        ([(b"x", b"1"), *GOOD], "pseudo-header b':method' after a regular field"),
        ([*GOOD[:3], (b":path", b"/")], "pseudo-header b':path' repeated"),
        ([(b":method", b""), *GOOD[1:]], "pseudo-header b':method' is empty"),
        ([*GOOD, (b"te", b"gzip")], "te other than 'trailers'"),
        ([*GOOD, (b"X-Up", b"1")], "field name b'X-Up' is not a lowercase token or is connection-specific"),
        ([*GOOD, (b"", b"1")], "field name b'' is not a lowercase token or is connection-specific"),
        ([*GOOD, (b"connection", b"x")], "field name b'connection' is not a lowercase token or is connection-specific"),
        ([*GOOD, (b"x", b" 1")], "value of b'x' has NUL, CR, LF or surrounding whitespace"),
        ([*GOOD, (b"x", b"1\t")], "value of b'x' has NUL, CR, LF or surrounding whitespace"),
        ([*GOOD, (b"x", b"a\r\nb")], "value of b'x' has NUL, CR, LF or surrounding whitespace"),
        ([(b":path", b"/\x00"), *GOOD], "value of b':path' has NUL, CR, LF or surrounding whitespace"),
        ([*GOOD, (b"x", b"a b")], None),
    ],
)
def test_request_problems(headers, problem):
    checker = h2f.FieldChecker()
    for _ in range(2):  # the twin remembers valid fields: the second answer must be the same
        assert checker.request_problem(headers) == problem


def test_trailers_problems():
    checker = h2f.FieldChecker()
    assert checker.trailers_problem([(b"grpc-status", b"0")]) is None
    assert checker.trailers_problem([(b":path", b"/")]) == "pseudo-header b':path' in trailers"
    assert checker.trailers_problem([(b"x", b"\n")]) == "value of b'x' has NUL, CR, LF or surrounding whitespace"


def _both():
    return compiled_and_twin("h2fields")


# Octets and names chosen to hit every rule: pseudo-headers, token and non-token octets, uppercase, the edges.
_octets = st.sampled_from(b"aZ:-_ \t\x00\r\n~\x7f\xff")
_names = st.one_of(
    st.sampled_from(
        [b":method", b":scheme", b":path", b":authority", b":status", b"te", b"connection", b"content-type", b"", b":"]
    ),
    st.lists(_octets, max_size=6).map(bytes),
)
_values = st.one_of(st.sampled_from([b"", b"trailers", b"POST"]), st.lists(_octets, max_size=6).map(bytes))
_lists = st.lists(st.tuples(_names, _values), max_size=8)


@settings(max_examples=500)
@given(st.lists(_lists, min_size=1, max_size=4), st.booleans())
def test_compiled_matches_twin(lists, with_good_prefix):
    compiled, twin = _both()
    checkers = compiled.FieldChecker(), twin.FieldChecker()
    for headers in lists:
        if with_good_prefix:
            headers = GOOD[:3] + headers
        assert checkers[0].request_problem(headers) == checkers[1].request_problem(headers)
        assert checkers[0].trailers_problem(headers) == checkers[1].trailers_problem(headers)
