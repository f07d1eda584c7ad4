"""Top-level configs composed from the per-module dataclasses, and their registration.

Library code receives these as plain dataclasses; only `register_configs` touches Hydra.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmt.data.parallel import DataConfig
from nmt.data.tokenizer import TokenizerConfig
from nmt.models.seq2seq import ModelConfig
from nmt.search import BeamConfig
from nmt.training.progress import LoopConfig


@dataclass
class TrainConfig:
    """Everything `python -m nmt.train` needs; saved resolved in each checkpoint."""

    # translation (Seq2Seq on parallel text) | lm (character RNN LM on data.path)
    task: str = "translation"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    # decoding used for validation BLEU and the final test translation
    search: BeamConfig = field(default_factory=BeamConfig)


@dataclass
class EvalDataConfig:
    # data root; null = the root the checkpoint was trained on
    root: str | None = None


@dataclass
class EvaluateConfig:
    """`python -m nmt.evaluate ckpt=PATH split=val|test data.root=DIR`."""

    # a checkpoint, or a list of them, ckpt=[a.pt,b.pt]: an ensemble of the models
    # (str | list[str]: OmegaConf has no unions, so Any)
    ckpt: Any = dataclasses.MISSING
    split: str = "test"  # val | test | any {split} name under data.root
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    search: BeamConfig = field(default_factory=BeamConfig)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 | int8 (int8 decoder maps, CPU)
    threads: int = 0  # torch threads; 0 = all available cores
    # translations are written here (default: <run dir>/hyp.<split>.<tgt>)
    output: str = ""


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from `dataclasses.asdict` output.

    Unknown keys are a ValueError; missing keys keep their defaults.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        is_config = dataclasses.is_dataclass(kind) and isinstance(value, dict)
        kwargs[name] = from_dict(kind, value) if is_config else value
    return cls(**kwargs)


def config_path() -> str:
    """Hydra config dir: the repo's conf/ in a checkout, else the packaged nmt.conf."""
    repo_conf = Path(__file__).resolve().parent.parent / "conf"
    if (repo_conf / "config.yaml").is_file() and (
        repo_conf.parent / "pyproject.toml"
    ).is_file():
        return str(repo_conf)
    return "pkg://nmt.conf"


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (`base_*` names)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_train", node=TrainConfig)
    cs.store(name="base_evaluate", node=EvaluateConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="tokenizer", name="base_tokenizer", node=TokenizerConfig)
    cs.store(group="search", name="base_search", node=BeamConfig)
