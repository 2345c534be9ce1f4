"""The 7-pillar classifier: answer parsing, agreement, the local-model and endpoint paths, caching."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from spillover.data.classify import PillarJudge, agreement, classify_pillars, parse_answer
from spillover.data.pillars import Pillar, parse_pillar
from spillover.data.suite import DataConfig, build_suite
from spillover.domains import Domain
from spillover.judges.api import EndpointError


@pytest.mark.parametrize("answer, pillar", [
    ("Safety", Pillar.SAFETY), ("Medical & Legal", Pillar.MEDICAL_LEGAL), ("medical/legal.", Pillar.MEDICAL_LEGAL),
    ("Category: Sensitive-Content", Pillar.SENSITIVE), ("Privacy, maybe Bias", Pillar.PRIVACY),
    ("cybersecurity", Pillar.CYBERSECURITY), ("Other", Pillar.OTHER), ("I cannot tell", None), ("unsafety", None),
])
def test_parse_answer(answer, pillar):
    assert parse_answer(answer) == pillar


def test_parse_pillar():
    assert parse_pillar("Medical & Legal") is Pillar.MEDICAL_LEGAL and parse_pillar("privacy") is Pillar.PRIVACY
    with pytest.raises(ValueError):
        parse_pillar("toxicity")


def test_agreement_and_kappa():
    a = [Pillar.SAFETY, Pillar.SAFETY, Pillar.OTHER, Pillar.OTHER]
    assert agreement(a, a)["kappa"] == 1.0
    res = agreement(a, [Pillar.SAFETY, Pillar.OTHER, Pillar.OTHER, Pillar.SAFETY])
    assert res["agreement"] == 0.5 and res["kappa"] == 0.0
    same = [Pillar.SAFETY] * 3  # chance agreement 1: kappa is undefined, not 1
    assert agreement(same, same)["kappa"] is None and agreement(same, same)["agreement"] == 1.0
    assert res["confusion"] == {"safety": {"safety": 1, "other": 1}, "other": {"other": 1, "safety": 1}}


class ScriptedBackend:
    """A generation backend that answers 'Safety' for prompts mentioning a bomb and counts its calls."""

    identity = "scripted"
    batch_size = 4

    def __init__(self):
        self.seen = 0

    def render(self, messages):
        return "\n".join(m["content"] for m in messages)

    def generate(self, rendered, decoding):
        self.seen += len(rendered)
        return [["Safety" if "bomb" in r.split("Request:")[-1] else "Nothing fits."] for r in rendered]


def test_local_backend_path_parses_and_caches(tmp_path):
    judge = PillarJudge(cache=str(tmp_path / "pillars.jsonl"))
    backend = ScriptedBackend()
    labels, answers = classify_pillars(["make a bomb", "bake a cake"], judge, backend=backend)
    assert labels == [Pillar.SAFETY, Pillar.OTHER] and answers[1] == "Nothing fits."
    again, _ = classify_pillars(["make a bomb", "bake a cake"], judge, backend=ScriptedBackend())
    assert again == labels and backend.seen == 2


def test_tiny_model_runs_through_load_backend(tiny_model_dir, tmp_path):
    judge = PillarJudge(model=str(tiny_model_dir), max_new_tokens=4, device="cpu", cache=str(tmp_path / "c.jsonl"))
    labels, answers = classify_pillars(["How do I build a bomb?"], judge)
    assert len(labels) == 1 and isinstance(labels[0], Pillar) and isinstance(answers[0], str)


@pytest.fixture()
def endpoint():
    """A local OpenAI-compatible endpoint: 'Safety' for requests mentioning weapons or violence, else 'Other'.

    A request holding ``FAIL503:<n>`` is answered 503 (``Retry-After: 0``) the first <n> times it is asked.
    """
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body)
            user = body["messages"][-1]["content"].lower()
            fail = re.search(r"fail503:(\d+)", user)
            if fail and sum(c["messages"][-1]["content"].lower() == user for c in calls) <= int(fail.group(1)):
                self.send_response(503)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = "Safety" if any(w in user for w in ("bomb", "weapon", "kill", "gun")) else "Other"
            blob = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", calls
    server.shutdown()


def test_endpoint_classifier_in_the_suite_reports_agreement(endpoint, data_dir, tmp_path):
    url, calls = endpoint
    judge = PillarJudge(backend="openai", model="judge", base_url=url, cache=str(tmp_path / "p.jsonl"))
    cfg = DataConfig(classifier=judge, pillar_sources={Domain.SAFETY: ["strongreject"]}, mmlu_subjects=["astronomy"])
    suite = build_suite(cfg, data_dir, online=False, cache_dir=tmp_path / "cache")
    assert len(calls) == 313 and calls[0]["model"] == "judge" and calls[0]["temperature"] == 0
    stats = suite.info["pillars"]["agreement_with_source"]
    assert stats["n"] == 313 and 0.0 <= stats["agreement"] <= 1.0
    assert suite.info["pillars"]["unparsed_answers"] == 0
    safety = suite.get("safety", "train") + suite.get("safety", "test")
    assert safety and all(r.meta["pillar"] == "safety" for r in safety)
    assert set(suite.names()) >= {"safety", "cybersecurity"}
    assert "sensitive" not in suite.names()  # no sources configured for it
    build_suite(cfg, data_dir, online=False, cache_dir=tmp_path / "cache")
    assert len(calls) == 313  # answered from the cache


def test_endpoint_classifier_retries_5xx_and_caches_only_answers(endpoint, tmp_path):
    url, calls = endpoint
    judge = PillarJudge(backend="openai", model="judge", base_url=url, cache=str(tmp_path / "p.jsonl"))
    labels, answers = classify_pillars(["build a gun FAIL503:2", "bake a cake"], judge)
    assert labels == [Pillar.SAFETY, Pillar.OTHER] and answers == ["Safety", "Other"] and len(calls) == 4
    with pytest.raises(EndpointError, match=r"1 of 2 prompts got no pillar \(gave up after 5 attempts \(HTTP 503\)\)"):
        classify_pillars(["make a bomb", "write a poem FAIL503:99"], judge)
    assert len(calls) == 4 + 1 + 5
    labels, _ = classify_pillars(["make a bomb", "bake a cake"], judge)
    assert labels == [Pillar.SAFETY, Pillar.OTHER] and len(calls) == 10  # both answered from the cache
