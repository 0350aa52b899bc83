"""The one small interface every generation backend implements.

A batch of ``GenRequest`` in, one ``GenResult`` per request out, each with
``n`` ``GenOutput`` (text, finish reason, token counts). A backend never
raises for one bad request: that request's outputs carry
``finish_reason="error"`` and the error text, so one bad prompt never kills a
shard. (Transient failures are retried inside the backend first.)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from datagen.generate.config import SamplingConfig

log = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "error"]
THINK_OPEN = "<think>"


@dataclasses.dataclass(frozen=True)
class GenRequest:
    """One prompt to sample ``n`` times. Exactly one of ``prompt`` (raw text,
    sent as is) and ``messages`` (chat, rendered by the model's chat template)."""

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    n: int = 1
    sampling: SamplingConfig = SamplingConfig()

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenRequest needs exactly one of prompt= or messages=")
        if self.n < 1:
            raise ValueError(f"GenRequest.n must be >= 1, got {self.n}")


@dataclasses.dataclass(frozen=True)
class GenOutput:
    """One sample. ``completion_tokens`` is None when the backend cannot tell."""

    text: str | None
    finish_reason: FinishReason
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class GenResult:
    """The ``n`` samples of one request.

    ``think_prefilled`` is True when the prompt the model saw ended in an
    opened ``<think>`` (a chat template that pre-fills it), so the completion
    starts inside the reasoning; None when the backend cannot see the prompt.
    """

    outputs: list[GenOutput]
    think_prefilled: bool | None = None


class Backend(Protocol):
    """A batch of requests in, one result per request out, in order."""

    name: str

    def generate(self, requests: list[GenRequest]) -> list[GenResult]: ...


def error_result(request: GenRequest, detail: str) -> GenResult:
    """A result whose n outputs all record the same failure."""
    return GenResult([GenOutput(None, "error", error=detail) for _ in range(request.n)])


def ends_in_open_think(prompt_text: str) -> bool:
    """Did the rendered prompt leave a ``<think>`` block open for the model?"""
    return prompt_text.rstrip().endswith(THINK_OPEN)


def isolate_failures(
    run_batch: Callable[[list[GenRequest]], list[GenResult]], requests: Sequence[GenRequest]
) -> list[GenResult]:
    """Run a batch; if it raises, rerun each request alone so only the bad ones fail.

    Local engines (transformers, vLLM) reject a whole batch for one bad
    prompt (too long, bad chat messages); this keeps the rest.
    """
    requests = list(requests)
    try:
        return run_batch(requests)
    except Exception as exc:  # noqa: BLE001 - any engine failure is isolated below
        if len(requests) == 1:
            log.warning("generation request failed: %s", exc)
            return [error_result(requests[0], f"{type(exc).__name__}: {exc}")]
        log.warning("batch of %d failed (%s); retrying requests one by one", len(requests), exc)
    results = []
    for request in requests:
        results.extend(isolate_failures(run_batch, [request]))
    return results


def sampling_key(sampling: SamplingConfig, n: int) -> tuple[Any, ...]:
    """Requests with the same key can share one engine call."""
    return (n, sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.stop, sampling.seed)
