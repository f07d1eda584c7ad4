"""Every shipped config composes against its schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.config import EvaluateConfig, TrainConfig, register_configs
from tests.conftest import REPO

CONF = REPO / "conf"
register_configs()


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
)
def test_experiments_compose(experiment):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"])
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, TrainConfig)


@pytest.mark.parametrize("pair", ["de_en", "en_de", "fr_en", "en_fr", "cs_en", "en_cs"])
def test_every_multi30k_direction_is_the_de_en_recipe_turned(pair):
    def composed(experiment: str) -> TrainConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return OmegaConf.to_object(
                compose("config", overrides=[f"experiment={experiment}"])
            )

    cfg, recipe = composed(f"multi30k_{pair}"), composed("multi30k_de_en")
    src, tgt = pair.split("_")
    assert (cfg.data.src_lang, cfg.data.tgt_lang) == (src, tgt)
    assert (cfg.model, cfg.tokenizer, cfg.train) == (
        recipe.model,
        recipe.tokenizer,
        recipe.train,
    )


def test_default_is_multi30k_de_en_shape():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config"))
    m = cfg.model
    assert (m.cell, m.attention, m.hidden_size, m.embed_size, m.bidirectional) == (
        "gru",
        "bahdanau",
        512,
        256,
        True,
    )
    assert cfg.tokenizer.vocab_size == 8000 and cfg.tokenizer.joint


@pytest.mark.parametrize("group", ["model", "search", "data"])
def test_group_options_compose(group):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            OmegaConf.to_object(compose("config", overrides=[f"{group}={option}"]))


def test_evaluate_config_composes():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("evaluate", overrides=["ckpt=x.pt", "search.beam_size=10"])
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, EvaluateConfig) and obj.search.beam_size == 10


def test_evaluate_takes_one_checkpoint_or_a_list():
    import nmt.evaluate  # noqa: F401  (registers the results dir resolver)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        one = compose("evaluate", overrides=["ckpt=r/checkpoints/best.pt"])
        two = compose(
            "evaluate",
            overrides=["ckpt=[r/checkpoints/best.pt,s/last.pt]", "split=val"],
            return_hydra_config=True,
        )
    assert OmegaConf.to_object(one).ckpt == "r/checkpoints/best.pt"
    assert two.hydra.run.dir == "r/evaluate/best+last.val.beam5"
    assert list(two.ckpt) == ["r/checkpoints/best.pt", "s/last.pt"]


def test_packaged_conf_is_importable():
    import nmt.conf  # noqa: F401  (mapped from the repo's conf/ by pyproject)

    assert Path(nmt.conf.__file__).parent.resolve() == CONF.resolve()
