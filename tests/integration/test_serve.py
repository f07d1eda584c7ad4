"""`python -m nmt.serve` as a process on 127.0.0.1: it starts with one command,
outlives clients that vanish mid-request, stops cleanly on Ctrl-C, and refuses a
bad checkpoint or a taken port in one line."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT = 60


def start(ckpt: Path, log: Path, *flags: str) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "nmt", "serve", "--ckpt", str(ckpt)]
    server = subprocess.Popen(
        [*command, "--port", "0", "--threads", "1", *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"at http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found and "startup complete" in log.read_text():
            return server, int(found.group(1))
        time.sleep(0.1)
    server.kill()
    pytest.fail(f"the server did not start:\n{log.read_text()}")


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.load(r)


def post(port: int, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/translate", data=json.dumps(body).encode()
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)


def vanish(port: int, raw: bytes) -> None:
    """Send `raw` and close the connection without reading an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)


def test_server_outlives_vanishing_clients_and_stops_on_ctrl_c(
    tiny_checkpoint, tmp_path
):
    log = tmp_path / "server.log"
    server, port = start(tiny_checkpoint, log)
    try:
        assert get(port, "/health")["status"] == "ok"
        body = json.dumps({"texts": ["ein mann fährt fahrrad ."] * 8}).encode()
        head = b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        for _ in range(5):
            vanish(port, head % len(body) + body)  # gone before its answer
            vanish(port, head % 1000 + body[:10])  # gone in the middle of its body
            vanish(port, b"\xff\xfe garbage \r\n\r\n")
        answer = post(port, {"text": "der hund schläft ."})
        assert len(answer["results"]) == 1
        deadline = time.monotonic() + 30
        while (health := get(port, "/health"))["queued"] or health["decoding"]:
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(60)
    text = log.read_text()
    assert code == 128 + signal.SIGINT and "nmt.serve: stopped" in text
    assert "Traceback" not in text


def test_bad_checkpoint_and_taken_port_are_one_line_errors(tiny_checkpoint, tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "nmt.serve", "--ckpt", str(tmp_path / "none.pt")],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("nmt.serve: error:")
    assert len(missing.stderr.strip().splitlines()) == 1
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, "-m", "nmt.serve", "--ckpt", str(tiny_checkpoint)]
            + ["--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert busy.returncode == 2 and "in use" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
