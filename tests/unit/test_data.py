"""Parallel text loading, length filtering and seeded token-bucketed batches."""

from __future__ import annotations

import pytest

from nmt.data.parallel import (
    DataConfig,
    DataError,
    ParallelData,
    collate,
    load_parallel,
)
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


class WordTok:
    """Whitespace tokenizer with ids >= 4 (enough for batching tests)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [self.vocab.setdefault(w, 4 + len(self.vocab)) for w in text.split()]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]


def test_load_local_split(tiny_corpus):
    de, en = load_parallel(str(tiny_corpus), "train", ("de", "en"))
    assert len(de) == len(en) == 12
    assert de[0] == "ein mann fährt fahrrad ."


def test_missing_file_and_root_are_one_line_errors(tiny_corpus, tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_parallel(str(tiny_corpus), "nosuchsplit", ("de", "en"))
    with pytest.raises(DataError, match="not found"):
        load_parallel(str(tmp_path / "missing"), "train", ("de", "en"))


def test_line_count_mismatch(tmp_path):
    (tmp_path / "train.de").write_text("a\nb\n")
    (tmp_path / "train.en").write_text("a\n")
    with pytest.raises(DataError, match="differ in line count"):
        load_parallel(str(tmp_path), "train", ("de", "en"))


def test_invalid_utf8_is_replaced_not_fatal(tmp_path, capsys):
    (tmp_path / "train.de").write_bytes(b"gut\n\xff kaputt\n")
    (tmp_path / "train.en").write_bytes(b"good\nbroken\n")
    de, _ = load_parallel(str(tmp_path), "train", ("de", "en"))
    assert de[1] == "\ufffd kaputt"
    assert "invalid UTF-8" in capsys.readouterr().err


def test_hub_name_offline_fails_with_hint(monkeypatch):
    monkeypatch.setattr("nmt.data.parallel._hub_reachable", lambda *a, **k: False)
    with pytest.raises(DataError, match="data.root=DIR"):
        load_parallel("someone/not-a-dataset", "train", ("de", "en"))


def test_hub_data_without_a_language_is_a_clear_error(monkeypatch):
    class Table(dict):  # a `datasets` split with de and en columns
        column_names = ["de", "en"]

    import datasets

    monkeypatch.setattr("nmt.data.parallel._hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: Table(de=[], en=[]))
    with pytest.raises(DataError, match="has no fr text .its columns: de, en.; give"):
        load_parallel("bentrevett/multi30k", "train", ("fr", "en"))


def test_collate_adds_bos_eos_and_pads():
    batch = collate([[5, 6, 7], [8]], [[9], [10, 11]])
    assert batch.src.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, PAD_ID], [BOS_ID, 10, 11]]
    assert batch.tgt_out.tolist() == [[9, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert batch.num_tgt_tokens == 5


def make_data(n: int = 300, max_len: int = 12) -> ParallelData:
    src = [" ".join(f"w{i % 7}" for _ in range(1 + i % 15)) for i in range(n)]
    tgt = [" ".join(f"v{i % 5}" for _ in range(1 + (i * 7) % 15)) for i in range(n)]
    tok = WordTok()
    return ParallelData(src, tgt, tok, tok, max_len=max_len)


def test_length_filter_drops_long_pairs():
    data = make_data(max_len=12)
    assert data.dropped > 0
    assert all(len(s) <= 12 and len(t) < 12 for s, t in zip(data.src, data.tgt))


def test_batches_cover_each_pair_once_within_token_budget():
    data = make_data()
    cfg = DataConfig(batch_tokens=60, max_sentences=16, pool_batches=4)
    batches = data.batches(cfg, seed=3, epoch=0)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(data)))
    for b in batches:
        longest = max(len(data.tgt[i]) + 1 for i in b)
        assert len(b) <= 16
        assert len(b) == 1 or longest * len(b) <= 60


def test_batches_are_seeded_and_differ_per_epoch():
    data = make_data()
    cfg = DataConfig(batch_tokens=60, pool_batches=4)
    assert data.batches(cfg, seed=1, epoch=0) == data.batches(cfg, seed=1, epoch=0)
    assert data.batches(cfg, seed=1, epoch=0) != data.batches(cfg, seed=1, epoch=1)
    assert data.batches(cfg, seed=1, epoch=0) != data.batches(cfg, seed=2, epoch=0)


def test_bucketing_keeps_padding_low():
    data = make_data(n=600)
    cfg = DataConfig(batch_tokens=80, pool_batches=20)
    real = padded = 0
    for b in data.batches(cfg, seed=0, epoch=0):
        batch = data.collate(b)
        real += batch.num_tgt_tokens
        padded += batch.tgt_out.numel()
    assert real / padded > 0.85


def sampled_data(tiny_spm, *, max_len: int = 100, alpha: float = 0.3) -> ParallelData:
    from tests.conftest import PAIRS

    src, tgt = [de for de, _ in PAIRS] * 4, [en for _, en in PAIRS] * 4
    return ParallelData(
        src, tgt, tiny_spm, tiny_spm, max_len=max_len, sample_alpha=alpha
    )


def test_resampling_is_a_pure_function_of_seed_and_epoch(tiny_spm):
    data = sampled_data(tiny_spm)
    best = (data.src, data.tgt)  # before any epoch: the best segmentations
    encodings = {}
    for seed, epoch in [(1, 0), (1, 1), (2, 0), (1, 0)]:
        data.resample(seed=seed, epoch=epoch)
        got = (data.src, data.tgt)
        assert got != best
        assert encodings.setdefault((seed, epoch), got) == got
    assert len({str(e) for e in encodings.values()}) == 3  # all differ
    cfg = DataConfig(batch_tokens=60, pool_batches=4)
    data.resample(seed=1, epoch=0)
    batches = data.batches(cfg, seed=1, epoch=0)
    data.resample(seed=1, epoch=1)
    data.resample(seed=1, epoch=0)
    assert data.batches(cfg, seed=1, epoch=0) == batches


def test_the_length_filter_takes_the_sampled_lengths(tiny_spm):
    best = sampled_data(tiny_spm)
    longest = max(max(map(len, best.src)), max(map(len, best.tgt)) + 1)
    data = sampled_data(tiny_spm, max_len=longest, alpha=0.05)  # near characters
    assert data.dropped == 0
    data.resample(seed=1, epoch=0)
    assert 0 < data.dropped < len(best) and len(data) == len(best) - data.dropped
    assert all(
        len(s) <= longest and len(t) < longest for s, t in zip(data.src, data.tgt)
    )


def test_without_sampling_resample_changes_nothing(tiny_spm):
    data = sampled_data(tiny_spm, alpha=0.0)
    before = (data.src, data.tgt)
    data.resample(seed=1, epoch=3)
    assert (data.src, data.tgt) == before
    with pytest.raises(ValueError, match="WordTok cannot sample subwords"):
        ParallelData(["a"], ["b"], WordTok(), WordTok(), max_len=5, sample_alpha=0.1)
