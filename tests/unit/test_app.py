"""The JSON API through Starlette's test client on the tiny checkpoints: order,
n-best, attention, grouping of concurrent requests, limits, errors, the page."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from starlette.testclient import TestClient

from nmt.inference.loading import load_generator, load_translator
from nmt.search import BeamConfig
from nmt.serving.app import create_app
from nmt.serving.engines import GenerationEngine, TranslationEngine
from nmt.serving.limits import Limits
from tests.conftest import PAIRS

CPU = torch.device("cpu")
SOURCES = [de for de, _ in PAIRS]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint):
    return load_translator(tiny_checkpoint, device=CPU, precision="fp32")


def engine_of(translator, path="best.pt") -> TranslationEngine:
    model, cfg = translator
    return TranslationEngine(model, cfg, path=path, defaults=BeamConfig(beam_size=3))


def client_of(engine, limits: Limits | None = None, **batching) -> TestClient:
    return TestClient(create_app(engine, limits or Limits(), **batching))


def alone(translator, text: str, beam: int = 3, nbest: int = 1):
    cfg = BeamConfig(beam_size=beam, nbest=nbest)
    return translator[0].translate([text], cfg, offset=None)[0]


def test_health_and_info_describe_the_server(translator):
    with client_of(engine_of(translator), max_batch=16, max_wait_ms=5) as client:
        health = client.get("/health").json()
        info = client.get("/info").json()
    assert health["status"] == "ok" and health["kind"] == "translation"
    assert info["kind"] == "translation" and info["languages"] == {
        "src": "de",
        "tgt": "en",
    }
    assert info["parameters"] == sum(
        p.numel() for p in translator[0].model.parameters()
    )
    assert info["search"]["beam"] == 3 and info["search"]["max_len"] > 0
    assert info["limits"]["max_texts"] == Limits().max_texts
    assert info["batching"] == {"max_batch": 16, "max_wait_ms": 5, "workers": 1}


def test_translate_answers_each_input_in_order_as_decoded_alone(translator):
    texts = [*SOURCES, "", "ein hund ☃ läuft"]
    with client_of(engine_of(translator)) as client:
        many = client.post("/translate", json={"texts": texts}).json()["results"]
        one = client.post("/translate", json={"text": SOURCES[3]}).json()["results"]
    assert len(many) == len(texts) and many[len(SOURCES)]["translation"] == ""
    for text, result in zip(texts, many):
        best = alone(translator, text)[0]
        assert result["translation"] == translator[0].detokenize(best)
        assert result["score"] == pytest.approx(best.score, abs=1e-3)
    assert one == [many[3]]


def test_nbest_and_attention_when_asked(translator):
    body = {"text": SOURCES[0], "beam": 4, "nbest": 3, "attention": True}
    with client_of(engine_of(translator)) as client:
        (result,) = client.post("/translate", json=body).json()["results"]
    hyps = alone(translator, SOURCES[0], beam=4, nbest=3)
    assert [h["translation"] for h in result["nbest"]] == [
        translator[0].detokenize(h) for h in hyps
    ]
    scores = [h["score"] for h in result["nbest"]]
    assert scores == sorted(scores, reverse=True)
    assert result["nbest"][0]["translation"] == result["translation"]
    attention = result["attention"]
    weights = attention["weights"]
    assert len(weights) == len(attention["tgt_tokens"]) == len(hyps[0].tokens)
    assert all(len(row) == len(attention["src_tokens"]) for row in weights)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-2) for row in weights)


def test_concurrent_requests_with_different_settings_get_their_own_results(
    translator,
):
    engine = engine_of(translator)
    batches = []
    run = engine.run
    engine.run = lambda key, texts: batches.append((key, len(texts))) or run(key, texts)
    jobs = [(text, 1 + i % 3) for i, text in enumerate(SOURCES * 2)]
    with client_of(engine, max_wait_ms=50) as client:

        def post(job):
            text, beam = job
            answer = client.post("/translate", json={"text": text, "beam": beam})
            return answer.json()["results"][0]["translation"]

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(post, jobs))
    for (text, beam), translation in zip(jobs, got):
        assert translation == translator[0].detokenize(alone(translator, text, beam)[0])
    assert sum(size for _, size in batches) == len(jobs)
    assert len(batches) < len(jobs)  # gathered into batches


@pytest.mark.parametrize(
    "method, path, body, code, words",
    [
        ("POST", "/translate", b"\xff\xfe", 400, "UTF-8"),
        ("POST", "/translate", b'{"text": "a"', 400, "JSON"),
        ("POST", "/translate", b"", 400, "empty"),
        ("POST", "/translate", b'["a"]', 400, "object"),
        ("POST", "/translate", b'{"txt": "a"}', 400, "'txt'"),
        ("POST", "/translate", b'{"text": 1}', 400, "string"),
        ("POST", "/translate", b'{"text": "a", "beam": 99}', 422, "beam"),
        ("POST", "/translate", b'{"text": "a", "beam": 2, "nbest": 3}', 422, "nbest"),
        ("POST", "/translate", json.dumps({"texts": ["a"] * 65}).encode(), 422, "64"),
        ("POST", "/translate", json.dumps({"text": "a" * 2001}).encode(), 422, "2,000"),
        ("POST", "/generate", b'{"prompt": "a"}', 404, "POST /translate"),
        ("GET", "/translate", None, 405, "Method Not Allowed"),
        ("GET", "/nowhere", None, 404, "Not Found"),
    ],
)
def test_bad_requests_are_json_errors_and_the_server_goes_on(
    translator, method, path, body, code, words
):
    with client_of(engine_of(translator)) as client:
        answer = client.request(method, path, content=body)
        assert answer.status_code == code
        assert words in answer.json()["error"]
        assert client.get("/health").status_code == 200


def test_a_body_over_the_limit_is_413(translator):
    limits = Limits(max_body_kb=1)
    with client_of(engine_of(translator), limits) as client:
        answer = client.post("/translate", json={"text": "a" * 1100})
    assert answer.status_code == 413 and "1,024 bytes" in answer.json()["error"]


def test_a_failing_batch_is_a_500_for_its_requests_only(translator):
    engine = engine_of(translator)
    run = engine.run

    def fragile(key, texts):
        if "boom" in texts:
            raise RuntimeError("the decoder broke")
        return run(key, texts)

    engine.run = fragile
    with client_of(engine) as client:
        broken = client.post("/translate", json={"text": "boom"})
        fine = client.post("/translate", json={"text": SOURCES[0]})
    assert broken.status_code == 500 and "the decoder broke" in broken.json()["error"]
    assert fine.status_code == 200


def test_a_full_queue_is_503_with_retry_after(translator):
    engine = engine_of(translator)
    run, release, entered = engine.run, threading.Event(), threading.Event()

    def held(key, texts):
        entered.set()
        assert release.wait(30)
        return run(key, texts)

    engine.run = held
    limits = Limits(max_texts=2, max_queue=2)
    with client_of(engine, limits) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/translate", json={"text": SOURCES[0]})
        assert entered.wait(30)
        queued = pool.submit(client.post, "/translate", json={"texts": SOURCES[1:3]})
        deadline = time.monotonic() + 30
        while client.get("/health").json()["queued"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        full = client.post("/translate", json={"text": SOURCES[4]})
        release.set()
        assert first.result().status_code == queued.result().status_code == 200
    assert full.status_code == 503 and int(full.headers["Retry-After"]) >= 1
    assert "busy" in full.json()["error"]


@pytest.fixture(scope="module")
def lm_engine(tiny_lm_checkpoint):
    generator, cfg = load_generator(tiny_lm_checkpoint, device=CPU, precision="fp32")
    return GenerationEngine(generator, cfg, path="lm.pt")


def test_generate_samples_reproducibly_and_beam_searches(lm_engine):
    with TestClient(create_app(lm_engine, Limits())) as client:
        info = client.get("/info").json()
        body = {"prompt": "ROMEO:", "max_chars": 30, "seed": 3, "temperature": 0.9}
        first = client.post("/generate", json=body).json()
        again = client.post("/generate", json=body).json()
        beam = client.post(
            "/generate", json={"prompt": "JU", "beam": 3, "num_samples": 2}
        ).json()
        refused = client.post("/generate", json={"prompt": "a", "beam": 2, "top_k": 3})
        wrong = client.post("/translate", json={"text": "a"})
    assert info["kind"] == "lm" and info["search"]["temperature"] == 0.8
    assert first == again and first["seed"] == 3 and len(first["results"]) == 1
    assert 0 < len(first["results"][0]["text"]) <= 30
    assert len(beam["results"]) == 2 and beam["seed"] is None
    assert beam["results"][0]["score"] >= beam["results"][1]["score"]
    assert refused.status_code == 422 and "top_k" in refused.json()["error"]
    assert wrong.status_code == 404 and "/generate" in wrong.json()["error"]


def test_the_page_and_its_script_are_served(translator):
    with client_of(engine_of(translator)) as client:
        page, script = client.get("/"), client.get("/page.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith(
        "text/html"
    )
    assert 'id="translate"' in page.text and '<script src="/page.js">' in page.text
    assert script.status_code == 200 and "heatmap" in script.text
