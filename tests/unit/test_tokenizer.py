"""SentencePiece training/caching and the Tokenizer protocol."""

from __future__ import annotations

import dataclasses
import io
import pickle
from pathlib import Path

import pytest
import sentencepiece as spm

from nmt.data import tokenizer as tokenizer_module
from nmt.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    SentencePieceTokenizer,
    Tokenizer,
    TokenizerConfig,
    build_tokenizers,
    train_sentencepiece,
)

PAIRS = [
    ("Ein Mann fährt mit dem Fahrrad.", "A man rides a bike."),
    ("Zwei Hunde spielen im Schnee.", "Two dogs play in the snow."),
    ("Eine Frau liest ein Buch.", "A woman reads a book."),
    ("Kinder spielen im Park.", "Children play in the park."),
    ("Ein Junge springt ins Wasser.", "A boy jumps into the water."),
    ("Die Katze schläft auf dem Sofa.", "The cat sleeps on the sofa."),
    ("Ein Mädchen isst einen Apfel.", "A girl eats an apple."),
    ("Zwei Männer arbeiten auf der Straße.", "Two men work on the street."),
    ("Eine Gruppe von Leuten tanzt.", "A group of people dances."),
    ("Der Hund läuft über die Wiese.", "The dog runs across the meadow."),
    ("Ein älterer Mann trinkt Kaffee.", "An older man drinks coffee."),
    ("Die Kinder lachen  und singen.", "The children laugh  and sing."),
]
TINY = TokenizerConfig(vocab_size=80, hard_vocab_limit=False)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    src = _write(tmp_path / "train.de", [de for de, _ in PAIRS])
    tgt = _write(tmp_path / "train.en", [en for _, en in PAIRS])
    return src, tgt


@pytest.fixture(scope="module")
def joint_tok(tmp_path_factory: pytest.TempPathFactory) -> SentencePieceTokenizer:
    root = tmp_path_factory.mktemp("spm")
    src = _write(root / "train.de", [de for de, _ in PAIRS])
    tgt = _write(root / "train.en", [en for _, en in PAIRS])
    src_tok, _ = build_tokenizers([src], [tgt], TINY, root / "cache")
    return src_tok


def _one_line_value_error(excinfo: pytest.ExceptionInfo[ValueError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# -- SentencePieceTokenizer ----------------------------------------------------
def test_special_ids_and_pieces(joint_tok: SentencePieceTokenizer) -> None:
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    tok = joint_tok
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    sp = spm.SentencePieceProcessor(model_proto=tok.to_bytes())
    assert [sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert 40 < tok.vocab_size <= 80
    assert isinstance(tok, Tokenizer)


def test_round_trip_modulo_whitespace(joint_tok: SentencePieceTokenizer) -> None:
    for line in [text for pair in PAIRS for text in pair]:
        ids = joint_tok.encode(line)
        assert BOS_ID not in ids and EOS_ID not in ids and UNK_ID not in ids
        assert joint_tok.decode(ids) == " ".join(line.split())


def test_encode_batch_matches_encode(joint_tok: SentencePieceTokenizer) -> None:
    lines = [de for de, _ in PAIRS] + [""]
    assert joint_tok.encode_batch(lines) == [joint_tok.encode(s) for s in lines]


def test_decode_stops_at_eos_and_skips_pad_bos(
    joint_tok: SentencePieceTokenizer,
) -> None:
    ids = joint_tok.encode("Ein Mann")
    other = joint_tok.encode("Hund")
    assert joint_tok.decode([BOS_ID, *ids, EOS_ID, *other, PAD_ID]) == "Ein Mann"
    assert joint_tok.decode([PAD_ID, BOS_ID, *ids, PAD_ID]) == "Ein Mann"


def test_unknown_chars_do_not_crash(joint_tok: SentencePieceTokenizer) -> None:
    text = "Ein Mann 😀 漢字"
    ids = joint_tok.encode(text)
    assert UNK_ID in ids
    assert joint_tok.decode(ids).startswith("Ein Mann")
    assert joint_tok.unknown_chars(text) == sorted("😀漢字")
    assert joint_tok.unknown_fraction(text) == pytest.approx(3 / 10)
    assert joint_tok.unknown_fraction("Ein Mann") == 0.0
    assert joint_tok.unknown_fraction("") == 0.0


def test_bytes_and_pickle_round_trip(joint_tok: SentencePieceTokenizer) -> None:
    again = SentencePieceTokenizer.from_bytes(joint_tok.to_bytes())
    unpickled = pickle.loads(pickle.dumps(joint_tok))
    line = PAIRS[0][0]
    assert again.encode(line) == unpickled.encode(line) == joint_tok.encode(line)


def test_from_bytes_rejects_garbage_and_other_special_ids() -> None:
    with pytest.raises(ValueError, match="not a valid sentencepiece model"):
        SentencePieceTokenizer.from_bytes(b"garbage")
    buffer = io.BytesIO()  # sentencepiece defaults: unk 0, bos 1, eos 2, no pad
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([de for de, _ in PAIRS]),
        model_writer=buffer,
        vocab_size=50,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with pytest.raises(ValueError, match="special pieces"):
        SentencePieceTokenizer.from_bytes(buffer.getvalue())


def test_byte_fallback_round_trips_emoji(corpus: tuple[Path, Path], tmp_path: Path):
    cfg = dataclasses.replace(TINY, vocab_size=400, byte_fallback=True)
    tok, _ = build_tokenizers([corpus[0]], [corpus[1]], cfg, tmp_path / "cache")
    text = "Ein Hund 😀 漢字"
    ids = tok.encode(text)
    assert UNK_ID not in ids
    assert tok.decode(ids) == text
    assert tok.unknown_fraction(text) == 0.0


# -- training and cache ----------------------------------------------------------
def test_joint_unrestricted_returns_one_model_twice(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = dataclasses.replace(TINY, restrict_tgt=False)
    src_tok, tgt_tok = build_tokenizers([corpus[0]], [corpus[1]], cfg, tmp_path / "c")
    assert src_tok is tgt_tok
    assert UNK_ID not in src_tok.encode("Hund dog")


def test_restricted_target_keeps_only_its_own_pieces(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    joint, tgt = build_tokenizers([corpus[0]], [corpus[1]], TINY, tmp_path / "c")
    assert joint is not tgt and joint.to_bytes() != tgt.to_bytes()
    en = [en for _, en in PAIRS]
    seen = {i for line in en for i in joint.encode(line)}
    assert tgt.vocab_size == 4 + len(seen - {0, 1, 2, 3}) < joint.vocab_size
    for line in en:  # target training text: the same pieces, renumbered 0..V'-1
        ids = tgt.encode(line)
        assert max(ids) < tgt.vocab_size and UNK_ID not in ids
        pieces = [joint.decode([i]) for i in joint.encode(line)]
        assert [tgt.decode([i]) for i in ids] == pieces
        assert tgt.decode(ids) == joint.decode(joint.encode(line))
    assert tgt.encode_batch(en) == [tgt.encode(line) for line in en]
    # other text is spelled with target pieces only (smaller ones, or <unk>)
    word = "spielen"  # a German piece, English letters
    assert len(tgt.encode(word)) > len(joint.encode(word))
    assert all(0 <= i < tgt.vocab_size for i in tgt.encode(word))
    assert tgt.decode(tgt.encode(word)) == word
    again = SentencePieceTokenizer.from_bytes(tgt.to_bytes())
    assert again.vocab_size == tgt.vocab_size
    assert again.encode(en[0]) == tgt.encode(en[0])
    assert pickle.loads(pickle.dumps(tgt)).encode(en[1]) == tgt.encode(en[1])
    assert tgt.decode([BOS_ID, *tgt.encode(en[0]), EOS_ID, 5]) == en[0]
    assert tgt.decode([tgt.vocab_size + 3]).strip() == "\u2047"  # out of range: unk


def test_a_sampling_target_also_keeps_its_characters(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    _, tgt = build_tokenizers([corpus[0]], [corpus[1]], TINY, tmp_path / "c")
    cfg = dataclasses.replace(TINY, sample_alpha=0.1)
    _, chars = build_tokenizers([corpus[0]], [corpus[1]], cfg, tmp_path / "c")
    added = set(chars.pieces) - set(tgt.pieces)
    assert added and all(len(piece) == 1 for piece in added)
    assert set(tgt.pieces) < set(chars.pieces)
    for _, en in PAIRS:  # the best segmentation is the same pieces
        pieces = [tgt.pieces[i] for i in tgt.encode(en)]
        assert [chars.pieces[i] for i in chars.encode(en)] == pieces


def test_separate_models_per_side(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, joint=False)
    src_tok, tgt_tok = build_tokenizers([corpus[0]], [corpus[1]], cfg, tmp_path / "c")
    assert src_tok is not tgt_tok
    assert src_tok.to_bytes() != tgt_tok.to_bytes()
    assert UNK_ID in src_tok.encode("play")  # no "y" in the German text
    assert UNK_ID in tgt_tok.encode("Mädchen")
    assert len(list((tmp_path / "c").glob("spm-*.model"))) == 2


def test_cache_hit_does_not_retrain(
    corpus: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = train_sentencepiece(list(corpus), TINY, cache)
    (cached,) = cache.iterdir()
    assert cached.name.startswith("spm-") and cached.name.endswith(".model")
    assert cached.read_bytes() == first

    def fail(**_: object) -> None:
        raise AssertionError("trained again despite a cached model")

    monkeypatch.setattr(tokenizer_module.spm.SentencePieceTrainer, "train", fail)
    assert train_sentencepiece(list(corpus), TINY, cache) == first
    assert list(cache.iterdir()) == [cached]  # no temp files either


def test_cache_key_covers_text_options_and_file_order(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    train_sentencepiece(list(corpus), TINY, cache)
    train_sentencepiece(
        list(corpus), dataclasses.replace(TINY, model_type="bpe"), cache
    )
    train_sentencepiece(list(reversed(corpus)), TINY, cache)
    _write(corpus[0], [de for de, _ in PAIRS[:-1]])
    train_sentencepiece(list(corpus), TINY, cache)
    assert len(list(cache.glob("spm-*.model"))) == 4


def test_bad_model_type_is_one_line_value_error(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = dataclasses.replace(TINY, model_type="wordpiece")
    with pytest.raises(ValueError) as excinfo:
        train_sentencepiece(list(corpus), cfg, tmp_path / "cache")
    message = _one_line_value_error(excinfo)
    assert "model_type" in message and "'wordpiece'" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"vocab_size": 10}, "smaller than required_chars"),
        ({"vocab_size": 5000, "hard_vocab_limit": True}, "Vocabulary size too high"),
        ({"vocab_size": 100, "byte_fallback": True}, "byte_fallback"),
        ({"vocab_size": 3}, "vocab_size=3 must be > 4"),
        ({"max_sentences": 50}, "max_sentences"),
        ({"character_coverage": 0.0}, "character_coverage"),
    ],
)
def test_impossible_settings_are_one_line_value_errors(
    corpus: tuple[Path, Path], tmp_path: Path, changes: dict, expected: str
) -> None:
    cfg = dataclasses.replace(TINY, **changes)
    with pytest.raises(ValueError) as excinfo:
        train_sentencepiece(list(corpus), cfg, tmp_path / "cache")
    assert expected in _one_line_value_error(excinfo)
    assert "INTERNAL" not in str(excinfo.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_max_sentences_samples_reproducibly(tmp_path: Path) -> None:
    lines = [f"{de} {i}" for i in range(20) for de, _ in PAIRS]  # 240 lines
    path = _write(tmp_path / "many.de", lines)
    cfg = dataclasses.replace(TINY, max_sentences=120)
    first = train_sentencepiece([path], cfg, tmp_path / "a")
    assert train_sentencepiece([path], cfg, tmp_path / "b") == first


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        train_sentencepiece([tmp_path / "nope.de"], TINY, tmp_path / "cache")


def test_empty_text_is_value_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.de"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="hold no text"):
        train_sentencepiece([empty], TINY, tmp_path / "cache")


def test_invalid_utf8_is_replaced_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = _write(tmp_path / "latin1.de", [de for de, _ in PAIRS])
    latin1.write_bytes(latin1.read_text(encoding="utf-8").encode("latin-1"))
    src, tgt = build_tokenizers([latin1], [latin1], TINY, tmp_path / "cache")
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and "invalid UTF-8 in" in warnings[0]
    bad_lines = sum(not de.isascii() for de, _ in PAIRS)
    assert "latin1.de" in warnings[0] and f"on {bad_lines} line(s)" in warnings[0]
    assert "\ufffd" not in tgt.unknown_chars("Gr\ufffd\ufffde")  # a known char


# -- subword regularization ----------------------------------------------------
@pytest.mark.parametrize(("model_type", "alpha"), [("unigram", 0.2), ("bpe", 0.3)])
def test_sampled_segmentations_are_seeded_and_decode_to_the_text(
    corpus: tuple[Path, Path], tmp_path: Path, model_type: str, alpha: float
) -> None:
    cfg = dataclasses.replace(TINY, model_type=model_type, sample_alpha=alpha)
    src, tgt = build_tokenizers([corpus[0]], [corpus[1]], cfg, tmp_path / "cache")
    lines = [en for _, en in PAIRS] * 4
    best = tgt.encode_batch(lines)

    def sample(seed: int) -> list[list[int]]:
        return tgt.sample_batch(lines, alpha=alpha, nbest=-1, seed=seed)

    first = sample(7)
    src.sample_batch(lines, alpha=alpha, nbest=-1, seed=99)  # the RNG is shared
    assert sample(7) == first  # a pure function of the seed
    assert sample(8) != first and first != best
    assert tgt.encode_batch(lines) == best  # plain encoding never samples
    assert [tgt.decode(ids) for ids in first] == [tgt.decode(ids) for ids in best]
    assert all(UNK_ID not in ids for ids in first)  # restricted target: used pieces


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"sample_alpha": -0.1}, "sample_alpha must be >= 0, got -0.1"),
        ({"sample_alpha": float("nan")}, "sample_alpha must be >= 0"),
        ({"model_type": "bpe", "sample_alpha": 1.0}, "in [0, 1) for bpe"),
        ({"sample_nbest": 1}, "sample_nbest must be -1 (all segmentations) or >= 2"),
        ({"sample_nbest": 0}, "got 0"),
    ],
)
def test_bad_sampling_settings_are_one_line_value_errors(
    changes: dict, expected: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        dataclasses.replace(TINY, **changes)
    assert expected in _one_line_value_error(excinfo)
    assert dataclasses.replace(TINY, sample_alpha=2.0).sample_alpha == 2.0  # unigram
