"""Flags of translate, generate and repl: defaults in --help, --ckpt repeated for an
ensemble (translation) or refused (generate), no silently ignored sampling flag."""

from __future__ import annotations

import pytest

from nmt import generate, repl, translate


@pytest.mark.parametrize("cli", [translate, generate, repl])
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


def test_generate_refuses_a_second_ckpt(capsys):
    with pytest.raises(SystemExit) as exit_:
        generate.build_parser().parse_args(["--ckpt", "a.pt", "--ckpt", "b.pt"])
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
