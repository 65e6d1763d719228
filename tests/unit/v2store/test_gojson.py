from etcdx.v2store.events import format_time
from etcdx.v2store.gojson import encode


def test_strings_are_escaped_as_go_escapes_them():
    assert (
        encode({"v": 'a<b>&"\\\n\t\x01\u2028é'})
        == b'{"v":"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\t\\u0001\\u2028\xc3\xa9"}'
    )


def test_invalid_utf8_becomes_the_replacement_character():
    assert encode(["\udcff"]) == '["\ufffd"]'.encode()


def test_times_are_rfc3339_with_trailing_zeros_of_the_fraction_dropped():
    assert format_time(1_800_000_000_120_000_000) == "2027-01-15T08:00:00.12Z"
    assert format_time(1_800_000_000_000_000_000) == "2027-01-15T08:00:00Z"
