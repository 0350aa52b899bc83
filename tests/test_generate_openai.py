"""The OpenAI-compatible backend against a real HTTP server on loopback.

``FakeOpenAIServer`` is a test double of an OpenAI-compatible server: it
speaks the completions and chat completions API over real HTTP and answers
with a real tiny transformers model, and it can be told to fail a request
(429, 500, a slow answer) by a marker in the prompt.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datagen.generate import GenRequest, HFBackendConfig, OpenAIBackendConfig, SamplingConfig, make_backend
from datagen.generate.backends.hf import HFBackend
from datagen.tinymodel import build_model, build_tokenizer

FAST = SamplingConfig(max_tokens=8, seed=0)


class FakeOpenAIServer:
    """OpenAI-compatible HTTP server on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, backend: HFBackend):
        self.backend = backend
        self.faults: dict[str, list[str]] = {}  # prompt marker -> faults to serve, in order
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.calls.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                text = body.get("prompt") or body["messages"][-1]["content"]
                fault = server._next_fault(text)
                if fault == "429":
                    return self._send(429, {"error": "rate limited"}, {"Retry-After": "0"})
                if fault == "500":
                    return self._send(500, {"error": "internal"})
                if fault == "400":
                    return self._send(400, {"error": "bad request"})
                if fault == "sleep":
                    time.sleep(1.5)
                self._send(200, server._complete(self.path, body))

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Join in-flight handlers on close: a handler still sleeping at exit
        # would otherwise wake into torch during interpreter teardown.
        self.httpd.daemon_threads = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _next_fault(self, text: str) -> str | None:
        with self._lock:
            for marker, faults in self.faults.items():
                if marker in text and faults:
                    return faults.pop(0)
        return None

    def _complete(self, path: str, body: dict) -> dict:
        sampling = SamplingConfig(temperature=body["temperature"], top_p=body["top_p"],
                                  max_tokens=body["max_tokens"], seed=body.get("seed"))
        chat = path.endswith("/chat/completions")
        request = (GenRequest(messages=body["messages"], sampling=sampling) if chat
                   else GenRequest(prompt=body["prompt"], sampling=sampling))
        with self._lock:  # one generate at a time on the shared model
            out = self.backend.generate([request])[0].outputs[0]
        choice = {"index": 0, "finish_reason": out.finish_reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": out.text}
        else:
            choice["text"] = out.text
        return {"choices": [choice], "usage": {"prompt_tokens": out.prompt_tokens,
                                               "completion_tokens": out.completion_tokens}}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    tokenizer = build_tokenizer()
    hf = HFBackend(HFBackendConfig(model="tiny"), model=build_model(tokenizer), tokenizer=tokenizer)
    with FakeOpenAIServer(hf) as srv:
        yield srv


def _backend(server, **overrides):
    config = {"model": "tiny", "base_url": server.base_url, "api_key_env": "DATAGEN_TEST_OPENAI_KEY",
                  "timeout_s": 5.0, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}
    return make_backend(OpenAIBackendConfig(**{**config, **overrides}))


def _calls_for(server, marker):
    return [c for c in server.calls if marker in (c["body"].get("prompt") or c["body"]["messages"][-1]["content"])]


def test_completions_endpoint_n_samples_with_usage(server, monkeypatch):
    monkeypatch.setenv("DATAGEN_TEST_OPENAI_KEY", "sk-test")
    backend = _backend(server)
    result = backend.generate([GenRequest(prompt="plain-1+1=", n=3, sampling=FAST)])[0]
    assert len(result.outputs) == 3
    for out in result.outputs:
        assert out.finish_reason in ("stop", "length") and isinstance(out.text, str)
        assert out.prompt_tokens == len("plain-1+1=") and 1 <= out.completion_tokens <= 8
    calls = _calls_for(server, "plain-1+1=")
    assert [c["path"] for c in calls] == ["/v1/completions"] * 3
    assert {c["body"]["seed"] for c in calls} == {0, 1, 2}  # one seed per sample, not n copies
    assert {c["auth"] for c in calls} == {"Bearer sk-test"}
    assert calls[0]["body"]["temperature"] == 0.6 and calls[0]["body"]["top_p"] == 0.95


def test_chat_endpoint_for_messages(server):
    backend = _backend(server)
    result = backend.generate([GenRequest(messages=[{"role": "user", "content": "chat-hi"}], n=1, sampling=FAST)])
    assert result[0].outputs[0].finish_reason in ("stop", "length")
    assert result[0].outputs[0].prompt_tokens == 10  # <|user|> c h a t - h i <|end|> <|assistant|>
    assert _calls_for(server, "chat-hi")[0]["path"] == "/v1/chat/completions"
    assert _calls_for(server, "chat-hi")[0]["auth"] is None  # no key in the environment: no header


def test_429_and_500_are_retried(server):
    server.faults["retry-me"] = ["429", "500"]
    backend = _backend(server)
    out = backend.generate([GenRequest(prompt="retry-me", n=1, sampling=FAST)])[0].outputs[0]
    assert out.finish_reason in ("stop", "length") and out.error is None
    assert len(_calls_for(server, "retry-me")) == 3
    assert backend.stats == {"requests": 3, "retries": 2, "errors": 0}


def test_persistent_500_gives_up_after_bounded_retries(server):
    server.faults["always-500"] = ["500"] * 10
    backend = _backend(server, max_retries=2)
    results = backend.generate([GenRequest(prompt="always-500", n=1, sampling=FAST),
                                GenRequest(prompt="healthy-neighbour", n=1, sampling=FAST)])
    bad = results[0].outputs[0]
    assert bad.finish_reason == "error" and bad.error.startswith("HTTP 500")
    assert "gave up after 3 attempts" in bad.error
    assert len(_calls_for(server, "always-500")) == 3
    assert results[1].outputs[0].finish_reason in ("stop", "length")


def test_400_is_not_retried(server):
    server.faults["bad-request"] = ["400", "400"]
    backend = _backend(server)
    out = backend.generate([GenRequest(prompt="bad-request", n=1, sampling=FAST)])[0].outputs[0]
    assert out.finish_reason == "error" and out.error.startswith("HTTP 400")
    assert len(_calls_for(server, "bad-request")) == 1
    assert backend.stats["retries"] == 0


def test_timeout_is_retried_then_recorded(server):
    server.faults["slow"] = ["sleep", "sleep"]
    backend = _backend(server, timeout_s=0.3, max_retries=1)
    started = time.monotonic()
    out = backend.generate([GenRequest(prompt="slow", n=1, sampling=FAST)])[0].outputs[0]
    assert out.finish_reason == "error" and out.error.startswith("timeout after 0.3s")
    assert time.monotonic() - started < 1.5  # did not wait for the slow answers
    assert backend.stats["retries"] == 1


def test_connection_refused_is_an_error_not_a_crash():
    backend = make_backend(OpenAIBackendConfig(model="m", base_url="http://127.0.0.1:9/v1", max_retries=1,
                                               backoff_s=0.0))
    out = backend.generate([GenRequest(prompt="x", n=2, sampling=FAST)])[0].outputs
    assert [o.finish_reason for o in out] == ["error", "error"]
    assert out[0].error.startswith("connection error")


def test_stop_string_is_cut_even_when_the_server_ignores_it(server):
    # This fake, like `transformers serve`, does not apply `stop`: the backend cuts the text itself.
    plain = _backend(server).generate([GenRequest(prompt="stop test", n=1, sampling=FAST, seeds=(7,))])[0]
    text = plain.outputs[0].text
    stop = text[2:4]
    cut = _backend(server).generate([GenRequest(prompt="stop test", n=1, seeds=(7,),
                                                sampling=SamplingConfig(max_tokens=8, stop=(stop,)))])[0]
    assert cut.outputs[0].text == text[: text.find(stop)] and cut.outputs[0].finish_reason == "stop"


def test_local_chat_rendering_sends_the_prefilled_prompt_to_completions(server, tmp_path):
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    backend = _backend(server, tokenizer=str(tmp_path / "tok"))
    messages = [{"role": "user", "content": "render me"}, {"role": "assistant", "content": "<think>"}]
    result = backend.generate([GenRequest(messages=messages, n=2, sampling=FAST, seeds=(1, 2))])[0]
    calls = _calls_for(server, "render me")
    assert [c["path"] for c in calls] == ["/v1/completions"] * 2
    assert calls[0]["body"]["prompt"] == "<|user|>render me<|end|><|assistant|><think>"
    assert sorted(c["body"]["seed"] for c in calls) == [1, 2]  # one seed per sample
    assert result.think_prefilled is True
    with pytest.raises(ValueError, match="set backend.tokenizer"):
        _backend(server).generate([GenRequest(messages=messages, n=1, sampling=FAST)])
