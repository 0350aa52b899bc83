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
    sampling: SamplingConfig = SamplingConfig()  # noqa: RUF009 - frozen pydantic model: one shared default is safe
    #: One seed per sample (``len == n``), so sample k of a problem is the same
    #: whatever else is in the batch, shard or thread. None: derived from
    #: ``sampling.seed`` (``seed + k``) by the backend, for direct callers.
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenRequest needs exactly one of prompt= or messages=")
        if self.n < 1:
            raise ValueError(f"GenRequest.n must be >= 1, got {self.n}")
        if self.seeds is not None and len(self.seeds) != self.n:
            raise ValueError(f"GenRequest.seeds has {len(self.seeds)} seeds for n={self.n}")

    def sample_seeds(self) -> list[int | None]:
        """The seed of each of the n samples (None = unseeded)."""
        if self.seeds is not None:
            return list(self.seeds)
        base = self.sampling.seed
        return [None if base is None else base + k for k in range(self.n)]

    @property
    def prefill(self) -> str | None:
        """Text the assistant's reply starts with (a last ``assistant`` message), else None."""
        if self.messages and self.messages[-1].get("role") == "assistant":
            return self.messages[-1]["content"]
        return None


@dataclasses.dataclass(frozen=True)
class GenOutput:
    """One sample. ``completion_tokens`` is None when the backend cannot tell."""

    text: str | None
    finish_reason: FinishReason
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    #: Calls made for this sample (1 + retries); counted into the stage stats.
    attempts: int = 1
    #: The failure is of the kind a later retry may cure (server down, 5xx, timeout).
    transient: bool = False


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


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The exact text a model continues for chat ``messages``, via its own chat template.

    A last ``assistant`` message is a pre-fill: the template renders the turns
    before it with the generation prompt, and the pre-fill text follows as is
    (so the reply continues it, e.g. inside an opened ``<think>``).
    """
    if messages and messages[-1].get("role") == "assistant":
        head = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        return head + messages[-1]["content"]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


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
    return (n, sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.stop)
