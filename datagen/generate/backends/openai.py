"""OpenAI-compatible HTTP backend (``vllm serve``, SGLang, hosted APIs).

Each of a request's n samples is its own HTTP call with ``n=1``: the API
reports token usage per call, not per choice, so this is the only way to
record ``completion_tokens`` per sample; a failed sample is retried alone;
and servers with prefix caching (vLLM, SGLang) still share the prompt's
prefill. Calls run concurrently (asyncio + httpx) under a concurrency limit.

Retries: only 429, 5xx, connection errors and timeouts, with bounded
exponential backoff (a ``Retry-After`` header is honoured up to the bound).
Any other status is the request's own fault and is recorded, not retried.
Each sample records its attempts and whether its failure was transient, so
the stage counts requests, retries and errors per shard (``stats`` keeps
the backend's running totals too). Error texts name the endpoint.

Chat prompts go to ``/v1/chat/completions`` and the server renders them,
unless ``tokenizer`` names a local tokenizer: then they are rendered here
with its chat template (an assistant pre-fill included) and sent to
``/v1/completions`` as text, which is how to pre-fill ``<think>`` and to know
the exact prompt. Sample k of a request carries its own ``seed``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
from typing import Any

from datagen.generate.backends.base import GenOutput, GenRequest, GenResult, ends_in_open_think, render_chat
from datagen.generate.config import OpenAIBackendConfig

log = logging.getLogger(__name__)


class OpenAIBackend:
    """Completions endpoint for raw prompts, chat completions for messages."""

    def __init__(self, config: OpenAIBackendConfig, *, api_key: str | None = None):
        self.config = config
        self.name = config.model
        # The one place the key is read: the variable the config names.
        self._api_key = api_key if api_key is not None else os.environ.get(config.api_key_env)
        self.stats = {"requests": 0, "retries": 0, "errors": 0}
        #: Where requests go, for error messages.
        self.endpoint = config.base_url
        self._tokenizer = None
        if config.tokenizer is not None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(config.tokenizer)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Sample each request n times; results in request order.

        Raises ``ValueError`` for a chat with an assistant pre-fill and no
        ``tokenizer`` (the chat endpoint cannot continue a reply).
        """
        if self._tokenizer is None and any(r.prefill is not None for r in requests):
            raise ValueError("the template pre-fills the assistant's reply; the chat endpoint cannot continue it: "
                             "set backend.tokenizer to the model's tokenizer so prompts are rendered here")
        coro = self._generate_all(requests)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # Called from inside an event loop (an async flow, a notebook): run ours in a thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    async def _generate_all(self, requests: list[GenRequest]) -> list[GenResult]:
        import httpx

        cfg = self.config
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        semaphore = asyncio.Semaphore(cfg.max_concurrency)
        limits = httpx.Limits(max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency)
        async with httpx.AsyncClient(
            base_url=cfg.base_url.rstrip("/") + "/", headers=headers, timeout=cfg.timeout_s, limits=limits
        ) as client:
            calls = [self._sample(client, semaphore, r, k) for r in requests for k in range(r.n)]
            flat = await asyncio.gather(*calls)
        results, at = [], 0
        for request in requests:
            prefilled = ends_in_open_think(self._render(request)) if self._tokenizer is not None else None
            results.append(GenResult(list(flat[at : at + request.n]), think_prefilled=prefilled))
            at += request.n
        return results

    def _render(self, request: GenRequest) -> str:
        if request.messages is not None and self._tokenizer is not None:
            return render_chat(self._tokenizer, request.messages)
        return request.prompt or ""

    def _body(self, request: GenRequest, k: int) -> tuple[str, dict[str, Any]]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.config.model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "n": 1,
        }
        if s.stop:
            body["stop"] = list(s.stop)
        seed = request.sample_seeds()[k]
        if seed is not None:
            body["seed"] = seed  # one seed per sample: n=1 calls with one seed would return n identical samples
        body.update(self.config.extra_body)
        if request.messages is not None and self._tokenizer is None:
            return "chat/completions", {**body, "messages": request.messages}
        return "completions", {**body, "prompt": self._render(request)}

    async def _sample(self, client, semaphore: asyncio.Semaphore, request: GenRequest, k: int) -> GenOutput:
        import httpx

        cfg = self.config
        path, body = self._body(request, k)
        url = f"{cfg.base_url.rstrip('/')}/{path}"
        detail = ""
        for attempt in range(cfg.max_retries + 1):
            delay = min(cfg.max_backoff_s, cfg.backoff_s * 2**attempt)
            async with semaphore:
                self.stats["requests"] += 1
                try:
                    response = await client.post(path, json=body)
                except httpx.TimeoutException:
                    detail = f"timeout after {cfg.timeout_s}s"
                except httpx.TransportError as exc:
                    detail = f"connection error: {type(exc).__name__}: {exc}"
                else:
                    status = response.status_code
                    if status == 200:
                        out = self._cut_at_stop(self._parse(response, path), request.sampling.stop)
                        return dataclasses.replace(out, attempts=attempt + 1)
                    detail = f"HTTP {status}: {response.text[:300]}"
                    if status != 429 and status < 500:
                        self.stats["errors"] += 1
                        return GenOutput(None, "error", error=f"{detail} (POST {url})", attempts=attempt + 1)
                    retry_after = _seconds(response.headers.get("retry-after"))
                    if retry_after is not None:
                        delay = min(cfg.max_backoff_s, retry_after)
            if attempt < cfg.max_retries:
                self.stats["retries"] += 1
                log.info("transient failure (%s); retry %d/%d in %.2fs", detail, attempt + 1, cfg.max_retries, delay)
                await asyncio.sleep(delay)
        self.stats["errors"] += 1
        return GenOutput(None, "error", error=f"{detail} (POST {url}, gave up after {cfg.max_retries + 1} attempts)",
                         attempts=cfg.max_retries + 1, transient=True)

    def _parse(self, response, path: str) -> GenOutput:
        try:
            data = response.json()
            choice = data["choices"][0]
            if path.startswith("chat"):
                message = choice["message"]
                text = message.get("content") or ""
                # Servers with a reasoning parser return the think block separately;
                # put it back so every backend yields the same completion shape.
                thinking = message.get("reasoning_content") or message.get("reasoning")
                if thinking:
                    text = f"<think>{thinking}</think>{text}"
            else:
                text = choice["text"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.stats["errors"] += 1
            return GenOutput(None, "error", error=f"malformed response: {type(exc).__name__}: {exc}")
        reason = choice.get("finish_reason")
        if reason == "length":
            finish = "length"
        elif reason in ("stop", "eos", None):
            finish = "stop"
        else:  # content_filter, abort, …: not a natural end of the sample
            self.stats["errors"] += 1
            return GenOutput(text, "error", usage.get("prompt_tokens"), usage.get("completion_tokens"),
                             error=f"finish_reason {reason!r}")
        return GenOutput(text, finish, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _cut_at_stop(self, out: GenOutput, stop: tuple[str, ...]) -> GenOutput:
        """Cut a sample at its first stop string, as the API defines: some servers
        (``transformers serve``) ignore ``stop`` or return it, and every backend must
        give the same completion shape."""
        if out.text is None or not stop or out.finish_reason == "error":
            return out
        cuts = [at for at in (out.text.find(s) for s in stop) if at >= 0]
        if not cuts:
            return out
        return dataclasses.replace(out, text=out.text[: min(cuts)], finish_reason="stop")


def _seconds(value: str | None) -> float | None:
    """A numeric Retry-After header in seconds (the HTTP-date form is ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
