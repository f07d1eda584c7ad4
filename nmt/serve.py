"""`python -m nmt.serve --ckpt PATH`: serve a checkpoint over HTTP (JSON API + web page).

Concurrent requests are decoded together in batches (see docs/serve.md). Binds
to 127.0.0.1 unless --host says otherwise; there is no authentication. Logs go
to stderr.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import logging.config
import math
import signal
import socket
import sys
from dataclasses import fields
from typing import Any

from nmt.search import BeamConfig
from nmt.serving.limits import Limits
from nmt.utils.errors import user_errors
from nmt.utils.runtime import add_runtime_flags, checkpoint_parser, runtime_from_flags

log = logging.getLogger("nmt.serve")
_HANDLER = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
LOG_CONFIG: dict[str, Any] = {  # uvicorn's and ours, all on stderr
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {**_HANDLER, "formatter": "plain"}},
    "loggers": {
        name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
        for name in ("uvicorn", "uvicorn.access", "nmt.serve")
    },
}


def build_parser() -> argparse.ArgumentParser:
    search = BeamConfig()
    p = checkpoint_parser(
        "nmt.serve", __doc__, "checkpoint (translation model or char LM)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)"
    )
    p.add_argument(
        "--port", type=int, default=8000, help="TCP port (0 = a free one, logged)"
    )
    p.add_argument(
        "--beam",
        type=int,
        default=search.beam_size,
        help="beam width when a request gives none",
    )
    p.add_argument(
        "--len-penalty",
        type=float,
        default=search.len_penalty,
        help="GNMT alpha when a request gives none",
    )
    p.add_argument(
        "--max-batch", type=int, default=64, help="sentences decoded together at most"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long a request may wait for others to fill its batch",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="batches decoded at once, each by its own thread with --threads / N "
        "torch threads",
    )
    for f in fields(Limits):
        flag = "--" + f.name.replace("_", "-")
        p.add_argument(flag, type=int, default=f.default, help=f.metadata["help"])
    p.add_argument(
        "--access-log", action="store_true", help="log every request (stderr)"
    )
    add_runtime_flags(
        p, precisions="auto | fp32 | bf16 | int8 (int8: translation, CPU)"
    )
    return p


def check_args(args: argparse.Namespace) -> Limits:
    """The request limits; ValueError for flags out of range."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_batch < 1 or args.workers < 1:
        raise ValueError("--max-batch and --workers must be >= 1")
    if not (math.isfinite(args.max_wait_ms) and args.max_wait_ms >= 0):
        raise ValueError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    BeamConfig(beam_size=args.beam, len_penalty=args.len_penalty)  # checks both
    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    if args.beam > limits.max_beam:
        raise ValueError(f"--beam {args.beam} is over --max-beam {limits.max_beam}")
    return limits


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (OSError, e.g. the port is taken, here
    rather than inside the server). Its protocol is TCP by number, as asyncio
    needs to set TCP_NODELAY on accepted connections: without it, Nagle's
    algorithm and delayed ACKs add about 40 ms to every answer."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def load_engine(args: argparse.Namespace) -> Any:
    """The engine for the checkpoint's kind, warmed up."""
    import torch

    from nmt.inference.generator import TextGenerator
    from nmt.inference.loading import load_any
    from nmt.serving.engines import GenerationEngine, TranslationEngine

    model, cfg = load_any(args.ckpt, **runtime_from_flags(args))
    if isinstance(model, TextGenerator):
        engine: Any = GenerationEngine(model, cfg, path=args.ckpt)
    else:
        defaults = BeamConfig(beam_size=args.beam, len_penalty=args.len_penalty)
        engine = TranslationEngine(model, cfg, path=args.ckpt, defaults=defaults)
    engine.warm_up()
    # each worker thread decodes with its share of the threads (as `in_workers`)
    torch.set_num_threads(max(1, torch.get_num_threads() // args.workers))
    return engine


def ignore_broken_pipes() -> None:
    """A client that vanishes makes a socket write fail with EPIPE (which asyncio
    handles); `nmt` (`__main__.py`) lets SIGPIPE end the process instead, as Unix
    filters do, which would kill the server. Main thread only, where SIGPIPE exists."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def run_until_stopped(server: Any, sock: socket.socket) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit status: 0, or 128 + the signal
    (130, 143, as `nmt.train`). Uvicorn stops gracefully on either, then raises
    the signal again with the handler it found: this one records it, where
    Python's own would print a KeyboardInterrupt traceback or kill the process."""
    received: list[int] = []
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {
        sig: signal.signal(sig, lambda s, _: received.append(s)) for sig in stops
    }
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received else 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    ignore_broken_pipes()
    with user_errors("nmt.serve"):
        try:
            import uvicorn

            from nmt.serving.app import create_app
        except ModuleNotFoundError as e:
            raise ValueError(
                f"the server needs {e.name}: pip install -e '.[serve]'"
            ) from None
        limits = check_args(args)
        logging.config.dictConfig(LOG_CONFIG)
        sock = listen(args.host, args.port)
        host, port = sock.getsockname()[:2]
        engine = load_engine(args)
        app = create_app(
            engine,
            limits,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            workers=args.workers,
        )
        if not _loopback(args.host):
            log.warning("listening on %s: anyone who reaches it may use it", host)
        log.info("serving %s (%s) at http://%s:%d/", args.ckpt, engine.kind, host, port)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=LOG_CONFIG,
            access_log=args.access_log,
            timeout_graceful_shutdown=30,
        )
        status = run_until_stopped(uvicorn.Server(config), sock)
    print("nmt.serve: stopped", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
