"""Flags of translate, generate, repl and serve: defaults in --help, --ckpt repeated
for an ensemble (translation) or refused (generate, serve), no silently ignored
sampling flag, serve's settings checked before it starts."""

from __future__ import annotations

import socket

import pytest

from nmt import generate, repl, serve, translate


@pytest.mark.parametrize("cli", [translate, generate, repl, serve])
def test_help_shows_defaults(cli):
    text = cli.build_parser().format_help()
    assert "(default: auto)" in text  # --device / --precision
    assert "(default: None)" not in text


@pytest.mark.parametrize("cli", [translate, repl])
def test_ckpt_repeated_is_an_ensemble(cli):
    args = cli.build_parser().parse_args(["--ckpt", "a.pt", "--ckpt", "b.pt"])
    assert args.ckpt == ["a.pt", "b.pt"]
    assert cli.build_parser().parse_args(["--ckpt", "a.pt"]).ckpt == ["a.pt"]
    assert "ensemble" in " ".join(cli.build_parser().format_help().split())


@pytest.mark.parametrize("cli", [generate, serve])
def test_generate_and_serve_refuse_a_second_ckpt(cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--ckpt", "a.pt", "--ckpt", "b.pt"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ckpt given twice" in err


def test_translate_help_shows_the_search_defaults():
    text = " ".join(translate.build_parser().format_help().split())
    assert "greedy) (default: 5)" in text and "(default: 64)" in text


def test_generate_refuses_sampling_flags_with_a_beam():
    args = generate.build_parser().parse_args(
        ["--ckpt", "x.pt", "--beam", "5", "--temperature", "0.8"]
    )
    with pytest.raises(ValueError, match="--temperature set"):
        generate.continuations(None, args)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--beam", "20"], "over --max-beam"),
        (["--port", "70000"], "--port"),
        (["--max-wait-ms", "nan"], "--max-wait-ms"),
        (["--max-batch", "0"], "--max-batch"),
        (["--max-texts", "2000"], "never be queued"),
        (["--len-penalty", "inf"], "len_penalty"),
    ],
)
def test_serve_refuses_settings_out_of_range(flags, words):
    args = serve.build_parser().parse_args(["--ckpt", "x.pt", *flags])
    with pytest.raises(ValueError, match=words):
        serve.check_args(args)


def test_serve_listens_on_loopback_by_default_and_names_tcp():
    args = serve.build_parser().parse_args(["--ckpt", "x.pt"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    with serve.listen("127.0.0.1", 0) as sock:  # TCP by number: asyncio sets NODELAY
        assert sock.proto == socket.IPPROTO_TCP and sock.getsockname()[1] > 0
