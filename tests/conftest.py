"""Shared fixtures: a dozen sentence pairs, a tiny SentencePiece model, tiny seeded models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
# train overrides for a few-second CLI run on `tiny_corpus`
TINY_TRAIN = [
    "data.test_split=test",
    "tokenizer.vocab_size=60",
    "tokenizer.hard_vocab_limit=false",
    "model.hidden_size=16",
    "model.embed_size=8",
    "train.max_steps=6",
    "train.valid_every=3",
    "train.threads=1",
]
SHARED_DATA = REPO.parent / "shared" / "data"

PAIRS = [
    ("ein mann fährt fahrrad .", "a man rides a bike ."),
    ("eine frau liest ein buch .", "a woman reads a book ."),
    ("zwei hunde spielen im park .", "two dogs play in the park ."),
    ("ein kind isst einen apfel .", "a child eats an apple ."),
    ("der mann trinkt kaffee .", "the man drinks coffee ."),
    ("die frau singt ein lied .", "the woman sings a song ."),
    ("ein hund läuft am strand .", "a dog runs on the beach ."),
    ("zwei kinder spielen fußball .", "two children play soccer ."),
    ("ein mann liest eine zeitung .", "a man reads a newspaper ."),
    ("eine frau fährt ein auto .", "a woman drives a car ."),
    ("der hund schläft .", "the dog sleeps ."),
    ("die kinder lachen .", "the children laugh ."),
]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with train/val/test .de/.en files in the Multi30k layout."""
    root = tmp_path_factory.mktemp("corpus")
    for split, pairs in (("train", PAIRS), ("val", PAIRS[:4]), ("test", PAIRS[4:8])):
        (root / f"{split}.de").write_text("".join(de + "\n" for de, _ in pairs))
        (root / f"{split}.en").write_text("".join(en + "\n" for _, en in pairs))
    return root


@pytest.fixture(scope="session")
def tiny_spm(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """Joint SentencePiece tokenizer (~60 pieces) trained on tiny_corpus."""
    from nmt.data.tokenizer import TokenizerConfig, build_tokenizers

    cfg = TokenizerConfig(vocab_size=60, hard_vocab_limit=False)
    src, _ = build_tokenizers(
        [tiny_corpus / "train.de"],
        [tiny_corpus / "train.en"],
        cfg,
        tmp_path_factory.mktemp("spm"),
    )
    return src


def tiny_model_config(**overrides):
    from nmt.models.seq2seq import ModelConfig

    values = dict(embed_size=16, hidden_size=24, dropout=0.0, label_smoothing=0.0)
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture
def tiny_seq2seq():
    """Seeded tiny Bahdanau BiGRU model over a 40-token vocabulary (CPU, eval mode)."""
    from nmt.models.seq2seq import Seq2Seq

    torch.manual_seed(0)
    return Seq2Seq(tiny_model_config(), src_vocab=40, tgt_vocab=40).eval()


def peaked_search_case():
    """(model, inputs, lengths, cfg): a tiny eval-mode Seq2Seq (30 -> 40 tokens)
    whose output weights are scaled up for peaked distributions, as after
    training, four random sources and a beam-3 search of at most 6 tokens."""
    from nmt.models.seq2seq import Seq2Seq
    from nmt.search import BeamConfig

    torch.manual_seed(0)
    model = Seq2Seq(tiny_model_config(), src_vocab=30, tgt_vocab=40).eval()
    with torch.no_grad():
        model.output.weight.mul_(8.0)
    src = torch.randint(4, 30, (4, 7))
    lengths = torch.tensor([7, 5, 3, 6])
    return model, (src, lengths), lengths, BeamConfig(beam_size=3, max_len_b=6)


def needs_multi30k() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (SHARED_DATA / "multi30k" / "train.de").is_file(),
        reason=f"Multi30k not found at {SHARED_DATA / 'multi30k'} (needs ../shared/data)",
    )


def train_tiny_translation(
    corpus: Path, run: Path, *, seed: int = 1, max_steps: int = 120, vocab: int = 60
) -> Path:
    """best.pt of a tiny translation model trained on `corpus` into `run`;
    the same `vocab` gives the same tokenizers (SentencePiece is deterministic)."""
    from nmt.config import TrainConfig
    from nmt.data.parallel import DataConfig
    from nmt.data.tokenizer import TokenizerConfig
    from nmt.search import BeamConfig
    from nmt.train import run_train
    from nmt.training.progress import LoopConfig

    cfg = TrainConfig(
        data=DataConfig(
            root=str(corpus), test_split="test", batch_tokens=40, max_sentences=4
        ),
        tokenizer=TokenizerConfig(vocab_size=vocab, hard_vocab_limit=False),
        model=tiny_model_config(hidden_size=32, embed_size=24),
        train=LoopConfig(
            seed=seed,
            lr=0.01,
            max_steps=max_steps,
            valid_every=max_steps // 2,
            threads=1,
            precision="fp32",
            cache_dir=str(run / "cache"),
        ),
        search=BeamConfig(beam_size=1, batch_size=8),
    )
    run_train(cfg, run)
    return run / "checkpoints" / "best.pt"


@pytest.fixture(scope="session")
def tiny_checkpoint(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """best.pt of a tiny translation model trained for 120 steps on tiny_corpus."""
    return train_tiny_translation(tiny_corpus, tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def tiny_checkpoint_b(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Another tiny translation model over tiny_checkpoint's tokenizers (another
    seed, 40 steps): an ensemble partner."""
    run = tmp_path_factory.mktemp("tiny_run_b")
    return train_tiny_translation(tiny_corpus, run, seed=2, max_steps=40)


@pytest.fixture(scope="session")
def tiny_checkpoint_other_vocab(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A tiny translation model with a smaller vocabulary than tiny_checkpoint's
    (10 steps: only its vocabulary matters)."""
    run = tmp_path_factory.mktemp("tiny_run_other_vocab")
    return train_tiny_translation(tiny_corpus, run, max_steps=10, vocab=45)


# a few hundred characters of verse for the char LM (kept in code: no downloads)
TINY_TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"
    "Deny thy father and refuse thy name.\n\n"
) * 3


def tiny_lm_config(**overrides):
    """ModelConfig of a tiny char LM (hidden 8)."""
    values = dict(cell="lstm", embed_size=8, hidden_size=8, num_layers=2, dropout=0.0)
    values.update(overrides)
    return tiny_model_config(**values)


@pytest.fixture
def tiny_lm():
    """Seeded tiny 2-layer LSTM CharLM over a 40-token vocabulary (CPU, eval mode)."""
    from nmt.models.lm import CharLM

    torch.manual_seed(0)
    return CharLM(tiny_lm_config(), vocab_size=40).eval()


@pytest.fixture(scope="session")
def tiny_text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "verse.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


def tiny_lm_train_config(text: Path, **loop):
    """TrainConfig (task=lm) for a tiny LSTM LM on `text` (4 streams x 16 chars)."""
    from nmt.config import TrainConfig
    from nmt.data.parallel import DataConfig
    from nmt.training.progress import LoopConfig

    values = dict(
        seed=2, lr=0.01, max_steps=40, valid_every=20, threads=1, precision="fp32"
    )
    values.update(loop)
    return TrainConfig(
        task="lm",
        data=DataConfig(path=str(text), bptt=16, batch_size=4),
        model=tiny_lm_config(hidden_size=32, embed_size=16, dropout=0.1),
        train=LoopConfig(**values),
    )


@pytest.fixture(scope="session")
def tiny_lm_checkpoint(
    tiny_text_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """best.pt of a tiny char LM trained for 60 steps on TINY_TEXT."""
    from nmt.train import run_train

    run = tmp_path_factory.mktemp("tiny_lm_run")
    run_train(tiny_lm_train_config(tiny_text_file, max_steps=60), run)
    return run / "checkpoints" / "best.pt"


def write_metrics(run_dir: Path, kind: str = "seq2seq", records: int = 4) -> Path:
    """`run_dir/metrics.jsonl` as training writes it (`RunReport.validation`):
    `records` validations of a translation run ("seq2seq": loss, ppl, BLEU, chrF)
    or a char LM ("lm": loss, bpc, ppl), at steps 10, 20, ..., 30 s apart."""
    import math

    from nmt.training.progress import Progress
    from nmt.training.report import RunReport

    run_dir.mkdir(parents=True, exist_ok=True)
    report = RunReport(run_dir)
    for i in range(1, records + 1):
        loss = 3.0 / i
        if kind == "lm":
            metrics = {"val_loss": loss, "val_bpc": loss / math.log(2)}
        else:
            metrics = {"val_loss": loss, "val_bleu": 8.0 * i, "val_chrf": 20.0 + i}
        metrics["val_ppl"] = math.exp(loss)
        progress = Progress(step=10 * i, epoch=i, lr=1e-3, elapsed=30.0 * i)
        report.validation(progress, metrics, "", best=True)
    return run_dir
