"""Atomic save and safe (weights-only) load of checkpoints, plus RNG state for resume.

Payloads hold only what `torch.load(weights_only=True)` accepts: dicts, lists, tuples,
str, int, float, bool, None, tensors, optimizer/LR-scheduler state dicts and non-empty
bytes (b"" pickles as a call to `bytes()`, which is refused). Saving checks this.
Not for deciding what goes into a checkpoint (the trainer does that).
"""

from __future__ import annotations

import contextlib
import pickle
import random
import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import torch

from nmt.utils.io import atomic_write
from nmt.utils.text import first_line

FORMAT = "nmt"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line for the user."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` atomically, adding "format" and "format_version".

    The file is checked to load under `weights_only=True` before it replaces
    `path` (`nmt.utils.io.atomic_write`), so a crash or an error mid-save leaves
    any old file intact.

    Args:
        path: destination file; parent directories are created.
        payload: weights-only-loadable values (see the module docstring).

    Raises:
        ValueError: the payload holds something `load_checkpoint` would refuse.
    """
    data = {**payload, "format": FORMAT, "format_version": FORMAT_VERSION}
    atomic_write(path, lambda f: torch.save(data, f), check=_check_loadable)


def _check_loadable(path: Path) -> None:
    try:  # mmap: reads the pickled structure only, not the tensor data
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        refused = _refused_global(error) or _first_sentence(error)
        raise ValueError(
            "checkpoint payload holds objects that torch.load(weights_only=True) "
            f"refuses: {refused}"
        ) from None


def _first_sentence(error: BaseException) -> str:
    # torch's messages go on with advice after their first sentence
    return (first_line(error) or type(error).__name__).split(". ")[0].rstrip(".")


def _refused_global(error: Exception) -> str | None:
    # torch's message is several lines; pick out the name of the refused object
    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    if found is None:
        return None
    if found.group(1) in ("bytes", "builtins.bytes"):
        return "bytes() (an empty bytes object b'' is saved as that call)"
    return found.group(1)


def load_checkpoint(
    path: Path | str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint`, refusing arbitrary pickles.

    Args:
        path: the checkpoint file.
        map_location: device for the loaded tensors.

    Returns:
        The payload, including "format" and "format_version".

    Raises:
        CheckpointError: missing path, a directory, unreadable, corrupt or
            truncated file, objects weights-only loading refuses, or not an nmt
            checkpoint. The message is one line.
    """
    name = f"checkpoint '{path}'"
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{name} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{name} is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{name} is an empty file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise CheckpointError(f"{name} is not readable (permission denied)") from None
    except Exception as error:  # torch raises KeyError, EOFError, OSError, ...
        raise CheckpointError(_load_error(name, error, map_location)) from None
    return _check_format(payload, name)


def _load_error(name: str, error: Exception, map_location: object) -> str:
    refused = _refused_global(error)
    if refused:
        return f"{name} is not an nmt checkpoint (safe loading refused {refused})"
    if str(error).startswith("Attempting to deserialize object on"):
        return f"cannot load {name} onto {map_location}: {_first_sentence(error)}"
    reason = f"{type(error).__name__}: {_first_sentence(error)}"
    return f"{name} is not an nmt checkpoint (corrupt or truncated file: {reason})"


def _check_format(payload: object, name: str) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{name} is not an nmt checkpoint (no format marker: "
            "saved by something other than nmt?)"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name} has format_version {version!r}; this nmt reads up to "
            f"{FORMAT_VERSION} (upgrade nmt)"
        )
    return payload


def check_resumable(
    payload: dict[str, Any],
    path: Path,
    kind: str,
    model: dict[str, Any],
    progress: Collection[str],
    tokenizers: Collection[str],
) -> None:
    """CheckpointError unless `payload` (from `path`) holds what resuming a `kind`
    run of `model` (the run's model config as a dict) needs, with the right types:
    config, model weights, optimizer state, `progress` fields, RNG states and the
    `tokenizers` entries. Shapes are checked when the states are loaded."""

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"cannot resume from {path}: {why}")

    if "exported" in payload:
        raise refuse(
            "it is an exported model, for inference only (no optimizer or "
            "progress): resume from the run's checkpoints/last.pt"
        )
    if payload.get("kind") != kind:
        raise refuse(
            f"it is a '{payload.get('kind')}' checkpoint and this run trains '{kind}'"
        )
    for key in ("config", "model", "optimizer", "progress", "rng", "tokenizers"):
        if not isinstance(payload.get(key), dict):
            missing = key not in payload
            raise refuse(f"'{key}' is {'missing' if missing else 'not a mapping'}")
    saved = payload["config"].get("model")
    if not isinstance(saved, dict):
        raise refuse("its config has no model section")
    diff = [
        f"{k}={saved.get(k)!r}->{v!r}" for k, v in model.items() if saved.get(k) != v
    ]
    if diff:
        raise refuse(f"model config differs ({', '.join(diff)})")
    if not all(isinstance(v, torch.Tensor) for v in payload["model"].values()):
        raise refuse("'model' holds values that are not tensors")
    optimizer = payload["optimizer"]
    if not (
        isinstance(optimizer.get("state"), dict)
        and isinstance(optimizer.get("param_groups"), list)
    ):
        raise refuse("'optimizer' is not an optimizer state (state, param_groups)")
    for key, value in payload["progress"].items():
        if key not in progress:
            raise refuse(f"'progress' has an unknown field '{key}'")
        if not isinstance(value, int | float) or value != value:  # NaN
            raise refuse(f"progress field '{key}' is {value!r}, not a number")
    rng = payload["rng"]
    python = rng.get("python")
    if not (
        isinstance(rng.get("torch"), torch.Tensor)
        and isinstance(python, list | tuple)
        and len(python) == 3
    ):
        raise refuse("'rng' is not a saved random-number state")
    for key in tokenizers:
        if not isinstance(payload["tokenizers"].get(key), bytes):
            raise refuse(f"tokenizer '{key}' is missing")


@contextlib.contextmanager
def resume_errors(path: Path) -> Iterator[None]:
    """Context: an error while restoring the states of `path` (a model, optimizer,
    tokenizer or RNG state that does not fit the run) becomes a one-line
    CheckpointError naming the file."""
    try:
        yield
    except CheckpointError:
        raise
    except (
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
    ) as error:
        # torch's state-dict message: a heading, then one line per tensor
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = lines[1] if len(lines) > 1 and "state_dict" in lines[0] else ""
        reason = reason or first_line(error) or type(error).__name__
        raise CheckpointError(f"cannot resume from {path}: {reason[:300]}") from None


def rng_state() -> dict[str, Any]:
    """The Python, torch CPU and (if present) CUDA RNG states, checkpoint-safe.

    Returns:
        {"python": (version, tuple of ints, gauss_next), "torch": uint8 tensor,
        "cuda": list of uint8 tensors (only with CUDA)}; every part loads under
        `torch.load(weights_only=True)`.
    """
    state: dict[str, Any] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNGs from `rng_state()` output (also after a save/load).

    CUDA states are restored for as many devices as both runs have.
    """
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"]):
            if device < torch.cuda.device_count():
                torch.cuda.set_rng_state(cuda_state.cpu(), device)
