"""What a request to the server may ask (`Limits`), the error a request gets when it
asks too much or is malformed (`RequestError`), and reading a body into JSON.

Not for the fields of each endpoint (`inputs.py`) or the HTTP side (`app.py`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from typing import Any


class RequestError(Exception):
    """A request the server refuses: `status` (4xx, 503) and a one-line message."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = headers or {}


@dataclass
class Limits:
    """Bounds on one request and on the queue (`nmt.serve` flags of the same names)."""

    max_body_kb: int = field(
        default=1024, metadata={"help": "largest request body, in KiB (413 beyond)"}
    )
    max_texts: int = field(
        default=64, metadata={"help": "sentences per /translate request"}
    )
    max_chars: int = field(
        default=2000,
        metadata={
            "help": "characters per sentence or prompt (a prompt reads them all)"
        },
    )
    max_beam: int = field(default=16, metadata={"help": "largest beam a request asks"})
    max_gen_chars: int = field(
        default=2000, metadata={"help": "largest max_chars a /generate request asks"}
    )
    max_samples: int = field(
        default=8, metadata={"help": "continuations per /generate request"}
    )
    max_queue: int = field(
        default=1024,
        metadata={"help": "sentences waiting to be decoded; beyond, 503 + Retry-After"},
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be >= 1, got {getattr(self, f.name)}")
        if self.max_texts > self.max_queue:
            raise ValueError(
                f"max_texts ({self.max_texts}) must not exceed max_queue "
                f"({self.max_queue}): such a request could never be queued"
            )

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_kb * 1024


async def read_body(
    chunks: AsyncIterator[bytes], content_length: str | None, limit: int
) -> bytes:
    """The whole body, refusing (413) one longer than `limit` bytes before reading
    it when Content-Length says so, else as soon as it grows past the limit."""
    too_big = RequestError(413, f"request body over {limit:,} bytes")
    if content_length is not None:
        if not content_length.strip().isdigit():
            raise RequestError(400, f"bad Content-Length {content_length[:40]!r}")
        if int(content_length) > limit:
            raise too_big
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in `body` (UTF-8); 400 for anything else: bad UTF-8, bad
    or too deeply nested JSON, NaN/Infinity, a top level that is not an object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(
            400, f"body is not valid UTF-8 (byte {error.start})"
        ) from None
    if not text.strip():
        raise RequestError(400, "empty body: send a JSON object")
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    except ValueError as error:  # NaN, Infinity
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise RequestError(
            400, f"body must be a JSON object, not {type(value).__name__}"
        )
    return value


def check_fields(body: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """400 for a field `where` does not read (a typo would be silently ignored)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(
            400,
            f"{where} does not take {', '.join(map(repr, unknown))[:200]}; it takes "
            + ", ".join(allowed),
        )


def get_int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """body[name] as an int in [low, high] (400 for another type, 422 out of range)."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{name} must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise RequestError(422, f"{name} must be between {low} and {high}, got {value}")
    return value


def get_float(
    body: dict[str, Any], name: str, default: float, low: float, high: float
) -> float:
    """body[name] as a float in [low, high] (400 for another type, 422 out of range)."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(400, f"{name} must be a number, not {_kind(value)}")
    if not low <= value <= high:
        raise RequestError(422, f"{name} must be between {low} and {high}, got {value}")
    return float(value)


def get_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(400, f"{name} must be true or false, not {_kind(value)}")
    return value


def get_text(body: dict[str, Any], name: str, limits: Limits, what: str) -> str:
    """A string of at most limits.max_chars characters (`what`: how to name it)."""
    value = body[name] if name in body else ""
    if not isinstance(value, str):
        raise RequestError(400, f"{what} must be a string, not {_kind(value)}")
    if len(value) > limits.max_chars:
        raise RequestError(
            422,
            f"{what} has {len(value):,} characters; the limit is {limits.max_chars:,}",
        )
    return value


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        str: "a string",
        list: "a list",
        dict: "an object",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)
