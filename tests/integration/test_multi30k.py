"""On the real Multi30k copy beside the repo (skipped when ../shared/data is absent)."""

from __future__ import annotations

from nmt.data.parallel import DataConfig, ParallelData, load_parallel
from nmt.data.tokenizer import TokenizerConfig, build_tokenizers
from tests.conftest import SHARED_DATA, needs_multi30k

ROOT = SHARED_DATA / "multi30k"


@needs_multi30k()
def test_splits_load_with_expected_sizes():
    for split, count in (
        ("train", 29_000),
        ("val", 1_014),
        ("test_2016_flickr", 1_000),
    ):
        de, en = load_parallel(str(ROOT), split, ("de", "en"))
        assert len(de) == len(en) == count


@needs_multi30k()
def test_real_batches_have_little_padding(tmp_path):
    files = [ROOT / "val.de"], [ROOT / "val.en"]
    src_tok, tgt_tok = build_tokenizers(
        *files, TokenizerConfig(vocab_size=1000), tmp_path
    )
    de, en = load_parallel(str(ROOT), "val", ("de", "en"))
    data = ParallelData(de, en, src_tok, tgt_tok, max_len=100)
    real = padded = 0
    for indices in data.batches(DataConfig(batch_tokens=2000), seed=1, epoch=0):
        batch = data.collate(indices)
        assert batch.tgt_out.numel() <= 2000
        real += batch.num_tgt_tokens
        padded += batch.tgt_out.numel()
    assert real / padded > 0.9
