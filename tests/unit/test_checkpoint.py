"""Atomic save, weights-only load with one-line errors, and RNG state round trips."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from nmt.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


class _Custom:
    pass


def _trained_optimizer() -> tuple[torch.optim.Adam, torch.nn.Linear]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    return optimizer, model


def _payload() -> dict[str, Any]:
    optimizer, model = _trained_optimizer()
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5)
    plateau.step(1.0)
    return {
        "kind": "seq2seq",
        "config": {
            "model": {"hidden": 8, "cell": "gru", "dropout": 0.1},
            "layers": [1, 2],
            "name": None,
            "tied": True,
            "lr": 1e-3,
        },
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lambda_lr": lambda_lr.state_dict(),
        "plateau": plateau.state_dict(),
        "tokenizers": {"src": b"\x00\x01spm\xff", "tgt": bytes(range(256)) * 9},
        "rng": rng_state(),
        "progress": {"step": 7, "best_bleu": float("-inf"), "lr": 3e-4},
    }


def _error_message(path: Path) -> str:
    with pytest.raises(CheckpointError) as excinfo:
        load_checkpoint(path)
    message = str(excinfo.value)
    assert message and "\n" not in message
    error = excinfo.value  # no chained traceback under the one-line message
    assert error.__context__ is None or error.__suppress_context__
    return message


def test_round_trip_of_a_full_payload(tmp_path: Path) -> None:
    payload = _payload()
    path = tmp_path / "deep" / "dir" / "last.pt"
    save_checkpoint(path, payload)
    loaded = load_checkpoint(path)
    assert loaded["format"] == "nmt" and loaded["format_version"] == 1
    assert loaded["config"] == payload["config"]
    assert loaded["tokenizers"] == payload["tokenizers"]
    assert isinstance(loaded["tokenizers"]["src"], bytes)
    assert loaded["progress"] == payload["progress"]
    assert loaded["lambda_lr"] == payload["lambda_lr"]
    assert loaded["lambda_lr"]["lr_lambdas"] == [None]  # the lambda is not saved
    assert loaded["plateau"] == payload["plateau"]
    for name, tensor in payload["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    optimizer, _ = _trained_optimizer()
    optimizer.load_state_dict(loaded["optimizer"])
    assert optimizer.state_dict()["state"][0]["step"] == 1
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    lambda_lr.load_state_dict(loaded["lambda_lr"])  # the lambda comes from code
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    plateau.load_state_dict(loaded["plateau"])
    assert plateau.best == 1.0 and plateau.factor == 0.5
    assert "format" not in payload  # the caller's dict is not modified


def test_save_leaves_no_temp_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "a.pt", {"x": 1})
    save_checkpoint(tmp_path / "a.pt", {"x": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert load_checkpoint(tmp_path / "a.pt")["x"] == 2


def test_failing_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.ones(1000)})
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises
        save_checkpoint(
            path, {"step": 2, "weights": torch.zeros(1000), "oops": lambda: None}
        )
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(
    ("value", "refused"), [(b"", r"bytes\(\)"), (_Custom(), "_Custom")]
)
def test_unloadable_payload_is_refused_at_save(
    tmp_path: Path, value: object, refused: str
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(ValueError, match=refused):
        save_checkpoint(path, {"step": 2, "bad": value})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_path(tmp_path: Path) -> None:
    assert "does not exist" in _error_message(tmp_path / "nope.pt")


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in _error_message(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.05])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"weights": torch.ones(5000)})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    message = _error_message(path)
    assert "last.pt' is not an nmt checkpoint (corrupt or truncated file" in message


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"")
    assert "last.pt' is an empty file" in _error_message(tmp_path / "last.pt")


@pytest.mark.parametrize("junk", [b"not a checkpoint\n" * 10, b"garbage" * 20])
def test_corrupt_file(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(junk)
    message = _error_message(path)
    assert "x.pt' is not an nmt checkpoint (corrupt or truncated file" in message


def test_plain_torch_save_is_not_an_nmt_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"model": {"w": torch.ones(2)}}, path)
    assert "no format marker" in _error_message(path)
    torch.save(torch.ones(2), path)
    assert "no format marker" in _error_message(path)


def test_arbitrary_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "nmt", "format_version": 1, "obj": _Custom()}, path)
    message = _error_message(path)
    assert "(safe loading refused " in message and "_Custom" in message


def test_newer_format_version(tmp_path: Path) -> None:
    path = tmp_path / "new.pt"
    torch.save({"format": "nmt", "format_version": 2}, path)
    assert "format_version 2" in _error_message(path)


def test_rng_state_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (torch.rand(5), random.random(), random.gauss(0, 1))
    torch.rand(100)  # move both generators on
    random.random()
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(5), expected[0])
    assert random.random() == expected[1]
    assert random.gauss(0, 1) == expected[2]
