"""Decoding workers: `in_workers` (order, threads, errors) and translation with them."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import torch

from nmt.inference.translator import Translator
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig
from nmt.utils.runtime import auto_workers, in_workers
from tests.conftest import PAIRS, tiny_model_config

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    """torch uses 2 intra-op threads during the test (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_in_workers_keeps_order_shares_threads_and_restores_them(two_threads):
    seen: list[tuple[str, int]] = []
    both = threading.Barrier(2, timeout=30)  # items 0 and 1 need both workers

    def work(item: int) -> int:
        if item < 2:
            both.wait()
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return item * item

    assert in_workers(work, list(range(12)), 2) == [i * i for i in range(12)]
    assert {threads for _, threads in seen} == {1}  # 2 threads // 2 workers
    assert len({name for name, _ in seen}) == 2
    assert torch.get_num_threads() == 2


def test_in_workers_enters_the_context_once_per_worker():
    entered: list[str] = []

    @contextlib.contextmanager
    def context():
        entered.append(threading.current_thread().name)
        yield

    both = threading.Barrier(2, timeout=30)
    in_workers(lambda item: item < 2 and both.wait(), list(range(8)), 2, context)
    assert len(entered) == 2 and len(set(entered)) == 2
    entered.clear()
    in_workers(lambda item: item, list(range(8)), 1, context)
    assert entered == [threading.current_thread().name]  # one worker: this thread


def test_in_workers_raises_the_first_error_and_stops_the_others(two_threads):
    done: list[int] = []

    def work(item: int) -> None:
        if item == 2:
            raise ValueError("bad item 2")
        time.sleep(0.02)
        done.append(item)

    with pytest.raises(ValueError, match="bad item 2"):
        in_workers(work, list(range(50)), 2)
    assert len(done) < 10  # the other worker stopped after its current item
    assert torch.get_num_threads() == 2


def test_auto_workers(two_threads):
    assert auto_workers(0, CPU, jobs=10) == 2
    assert auto_workers(0, CPU, jobs=1) == 1  # one batch: one worker, all threads
    assert auto_workers(3, CPU, jobs=10) == 3
    assert auto_workers(3, CPU, jobs=2) == 2
    assert auto_workers(0, torch.device("cuda"), jobs=10) == 1
    torch.set_num_threads(1)
    assert auto_workers(0, CPU, jobs=10) == 1


def test_negative_workers_is_a_clear_error():
    with pytest.raises(ValueError, match="workers must be >= 0"):
        BeamConfig(workers=-1)


def _translator(tiny_spm, dropout: float = 0.0) -> Translator:
    torch.manual_seed(0)
    vocab = tiny_spm.vocab_size
    model = Seq2Seq(
        tiny_model_config(dropout=dropout), src_vocab=vocab, tgt_vocab=vocab
    )
    return Translator(model.eval(), tiny_spm, tiny_spm, device=CPU)


@pytest.mark.parametrize("beam", [1, 3])
def test_workers_translate_exactly_as_one_worker(tiny_spm, two_threads, beam):
    translator = _translator(tiny_spm)
    lines = [de for de, _ in PAIRS] + ["", "der hund"]
    one = translator.translate(
        lines, BeamConfig(beam_size=beam, batch_size=3, workers=1)
    )
    two = translator.translate(
        lines, BeamConfig(beam_size=beam, batch_size=3, workers=2)
    )
    assert len(two) == len(lines) and translator.workers_used == 2
    for a, b in zip(one, two, strict=True):
        assert [(h.tokens, h.log_prob, h.score) for h in a] == [
            (h.tokens, h.log_prob, h.score) for h in b
        ]


def test_workers_decode_a_training_model_in_eval_mode_and_restore_it(
    tiny_spm, two_threads
):
    translator = _translator(tiny_spm, dropout=0.5)
    lines = [de for de, _ in PAIRS]
    cfg = BeamConfig(beam_size=2, batch_size=2, workers=2)
    expected = translator.translate(lines, cfg)  # eval mode: no dropout
    translator.model.train()
    got = translator.translate(lines, cfg)
    assert translator.model.training
    assert [h[0].tokens for h in got] == [h[0].tokens for h in expected]
