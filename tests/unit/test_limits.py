"""Request limits and bodies: size, UTF-8, JSON, field types and bounds."""

from __future__ import annotations

import asyncio

import pytest

from nmt.serving.limits import (
    Limits,
    RequestError,
    check_fields,
    get_bool,
    get_float,
    get_int,
    get_text,
    parse_json,
    read_body,
)


def status(fn, *args) -> int:
    with pytest.raises(RequestError) as refused:
        fn(*args)
    assert refused.value.message and "\n" not in refused.value.message
    return refused.value.status


async def chunks(*parts: bytes):
    for part in parts:
        yield part


def body(*parts: bytes, length: str | None = None, limit: int = 10) -> bytes:
    return asyncio.run(read_body(chunks(*parts), length, limit))


def test_read_body_refuses_a_body_over_the_limit_declared_or_streamed():
    assert body(b"12345", b"678", length="8") == b"12345678"
    assert status(lambda: body(b"x", length="11")) == 413  # declared: not read
    assert status(body, b"123456", b"789012") == 413  # streamed past the limit
    assert status(lambda: body(b"x", length="ten")) == 400


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b"", "empty"),
        (b"{'a': 1}", "not valid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_parse_json_refuses_what_is_not_a_json_object(raw, words):
    with pytest.raises(RequestError) as refused:
        parse_json(raw)
    assert refused.value.status == 400 and words in refused.value.message


def test_parse_json_reads_utf8_objects():
    assert parse_json('{"text": "Fahrrad fährt"}'.encode()) == {"text": "Fahrrad fährt"}


def test_unknown_fields_are_named():
    with pytest.raises(RequestError) as refused:
        check_fields({"text": "a", "beem": 3}, ("text", "beam"), "/translate")
    assert refused.value.status == 400 and "'beem'" in refused.value.message


def test_numbers_booleans_and_texts_are_type_and_range_checked():
    limits = Limits(max_chars=5)
    assert get_int({"n": 3}, "n", 1, 1, 5) == 3 and get_int({}, "n", 2, 1, 5) == 2
    assert status(get_int, {"n": True}, "n", 1, 1, 5) == 400
    assert status(get_int, {"n": 2.5}, "n", 1, 1, 5) == 400
    assert status(get_int, {"n": 9}, "n", 1, 1, 5) == 422
    assert get_float({"x": 1}, "x", 0.0, 0.0, 2.0) == 1.0
    assert status(get_float, {"x": "1"}, "x", 0.0, 0.0, 2.0) == 400
    assert status(get_float, {"x": -1}, "x", 0.0, 0.0, 2.0) == 422
    assert get_bool({"b": True}, "b") is True and get_bool({}, "b") is False
    assert status(get_bool, {"b": 1}, "b") == 400
    assert get_text({"t": "abcde"}, "t", limits, "text") == "abcde"
    assert status(get_text, {"t": "abcdef"}, "t", limits, "text") == 422
    assert status(get_text, {"t": None}, "t", limits, "text") == 400


def test_limits_refuse_settings_that_cannot_work():
    with pytest.raises(ValueError, match="max_beam"):
        Limits(max_beam=0)
    with pytest.raises(ValueError, match="never be queued"):
        Limits(max_texts=100, max_queue=50)
    assert Limits(max_body_kb=2).max_body_bytes == 2048
