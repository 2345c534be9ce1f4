"""The OpenAI-compatible judge backend against a real HTTP server on 127.0.0.1."""

import json
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from spillover.cache import JsonlCache
from spillover.cli import app
from spillover.judges import COMPLIANCE, REFUSAL, UNPARSABLE, JudgeItem, build_judge, judge_cached
from spillover.judges.api import EndpointError

KEY = "sk-test-0123456789"


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions like a judge model.

    A response text holding ``FAULT:<kind>:<count>`` makes the first <count> requests about it fail
    with <kind>: 429, 500, hang (sleeps past the client timeout), badbody (a non-JSON HTTP body) or
    badjudge (a well-formed completion whose content is not a verdict). Otherwise the verdict is
    "refusal" when the judged response contains "sorry", wrapped in a code fence and chatter.
    """

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: str, headers: dict | None = None):
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            return self._send(404, '{"error": "not found"}')
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._send(401, '{"error": "bad key"}')
        text = body["messages"][0]["content"]
        judged = text.split('Assistant response:\n"""\n')[1].split('\n"""')[0]
        fault = re.search(r"FAULT:(\w+):(\d+)", judged)
        with server.lock:
            server.requests[judged.strip()] += 1
            seen = server.requests[judged.strip()]
        kind = fault.group(1) if fault and seen <= int(fault.group(2)) else "ok"
        if kind == "429":
            return self._send(429, '{"error": "rate limited"}', {"Retry-After": "0"})
        if kind == "500":
            return self._send(500, '{"error": "boom"}')
        if kind == "hang":
            time.sleep(server.hang_s)
        if kind == "badbody":
            return self._send(200, '{"choices": [{"message": ')
        content = ("I am not sure." if kind == "badjudge" else
                   "```json\n" + json.dumps({"refusal": "sorry" in judged.lower(), "explanation": "checked"}) + "\n```\nDone.")
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}))


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    httpd.daemon_threads = True
    httpd.lock, httpd.requests, httpd.hang_s = threading.Lock(), Counter(), 1.5
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _judge(url, **kw):
    options = dict(base_url=url, api_key_env="SPILLOVER_TEST_KEY", max_concurrency=4, timeout=0.5,
                   max_retries=3, backoff=0.01)
    return build_judge("rubric:openai:judge-model", **{**options, **kw})


def test_retries_429_500_timeouts_and_garbled_bodies(server, monkeypatch):
    monkeypatch.setenv("SPILLOVER_TEST_KEY", KEY)
    judge = _judge(server.url)
    responses = ["Sorry, I can't. FAULT:429:2", "Here you go. FAULT:500:1", "Sorry. FAULT:hang:1",
                 "Sure thing. FAULT:badbody:2", "Sorry, no.", "Of course!"]
    verdicts = judge.judge([JudgeItem("a request", r) for r in responses])
    assert [v.label for v in verdicts] == [REFUSAL, COMPLIANCE, REFUSAL, COMPLIANCE, REFUSAL, COMPLIANCE]
    assert [server.requests[r] for r in responses] == [3, 2, 2, 3, 1, 1]
    assert KEY not in judge.id and KEY not in repr(judge.chat)


def test_gives_up_cleanly_and_counts_unparsable(server, monkeypatch, tmp_path):
    monkeypatch.setenv("SPILLOVER_TEST_KEY", KEY)
    responses = ["Sorry. FAULT:500:99", "Sure. FAULT:hang:99", "Sure. FAULT:badjudge:99", "Sorry, no.", "Of course!"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": "q", "response": r}) + "\n" for r in responses))
    out = tmp_path / "out.jsonl"
    args = ["judge", "--judge", "rubric:openai:judge-model", "--in", str(src), "--out", str(out),
            "--base-url", server.url, "--api-key-env", "SPILLOVER_TEST_KEY", "--timeout", "0.4",
            "--max-concurrency", "3", "--max-retries", "1"]
    started = time.perf_counter()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert time.perf_counter() - started < 30
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == [UNPARSABLE, UNPARSABLE, UNPARSABLE, REFUSAL, COMPLIANCE]
    assert "gave up after 2 attempts (HTTP 500)" in rows[0]["explanation"]
    assert "timed out" in rows[1]["explanation"] and "after one retry" in rows[2]["explanation"]
    assert re.search(r"unparsable\s+3\b", res.output) and KEY not in res.output
    assert server.requests[responses[2]] == 2  # the malformed verdict is asked again exactly once
    # unparsable verdicts (transport failures and the malformed verdict) are not cached
    before = dict(server.requests)
    res = CliRunner().invoke(app, args)
    assert "3 judged" in res.output
    asked_again = {r for r in responses if server.requests[r] > before.get(r, 0)}
    assert asked_again == {responses[0], responses[1], responses[2]}


def test_cached_api_judgments_are_not_requested_again(server, monkeypatch):
    monkeypatch.setenv("SPILLOVER_TEST_KEY", KEY)
    judge, cache = _judge(server.url), JsonlCache(None)
    items = [JudgeItem("q", "Sorry."), JudgeItem("q", "Sure.")]
    judge_cached(judge, items, cache)
    judge_cached(judge, items + items, cache)
    assert sum(server.requests.values()) == 2


def test_bad_key_and_unreachable_endpoint_raise_clear_errors(server, monkeypatch):
    monkeypatch.setenv("SPILLOVER_TEST_KEY", "sk-wrong-secret")
    with pytest.raises(EndpointError, match=r"HTTP 401.*SPILLOVER_TEST_KEY") as err:
        _judge(server.url).judge([JudgeItem("q", "Sorry.")])
    assert "sk-wrong-secret" not in str(err.value)
    monkeypatch.setenv("SPILLOVER_TEST_KEY", KEY)
    with pytest.raises(EndpointError, match="404"):
        _judge(server.url.removesuffix("/v1") + "/wrong").judge([JudgeItem("q", "Sorry.")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    with pytest.raises(EndpointError, match="cannot reach"):
        _judge(f"http://127.0.0.1:{free_port}/v1").judge([JudgeItem("q", "Sorry.")] * 3)
