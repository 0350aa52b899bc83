"""The one flat table of GRPO reward functions, by name (``GRPOConfig.rewards`` keys).

The project's rewards (built on the verifiers, ``datagen.verify.rewards``) and
the toy task's (``trainers.toy``, for the "GRPO learns" test, the benchmarks
and the demo) are registered here explicitly; a caller may pass its own
functions to ``train_grpo(reward_fns=...)``, which take precedence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from datagen.verify.rewards import REWARDS as VERIFIER_REWARDS
from trainers.toy import toy_accuracy, toy_format

RewardFn = Callable[..., list[float | None]]

REWARDS: dict[str, RewardFn] = {
    **VERIFIER_REWARDS,
    "toy_accuracy": toy_accuracy,
    "toy_format": toy_format,
}


def resolve_rewards(weights: Mapping[str, float], reward_fns: Mapping[str, RewardFn] | None = None,
                    *, config: Any = None) -> dict[str, RewardFn]:
    """Name -> function for every name in ``weights``: ``reward_fns`` first, then the rewards
    ``config`` (a ``GRPOConfig``) defines — its ``reward_models`` and ``by_domain``
    (``trainers.reward_model.configured_rewards``) — then ``REWARDS``.

    Raises ``ValueError`` naming the unknown names and the known ones."""
    table: dict[str, Any] = {**REWARDS, **(reward_fns or {})}
    if config is not None:
        from trainers.reward_model import configured_rewards

        table = {**REWARDS, **configured_rewards(config, table), **(reward_fns or {})}
    missing = [name for name in weights if name not in table]
    if missing:
        raise ValueError(f"unknown reward function(s) {missing}; choose from {sorted(table)} "
                         "or pass reward_fns={name: fn}")
    return {name: table[name] for name in weights}


def combine(parts: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    """One completion's total reward from its named parts: the weighted sum of
    the parts that judged it; a part that could not (``None``) adds nothing.

    Why not "any ``None`` part makes the total ``None``" (the old rule): a
    ``None`` total gives advantage 0, so one part that cannot judge (no
    ``language`` column, a verifier ``error``) erased what every other part
    said, and a policy able to provoke that part's failure escaped the
    negative advantage of a wrong answer. Adding nothing for a missing part
    pays it like a 0 from that part, never more than a failing answer on
    parts scored in [0, 1]. The total is ``None`` only when no weighted part
    judged the completion (then there is nothing to learn from it).
    """
    judged = [(weights[n], v) for n, v in parts.items() if weights.get(n, 0) != 0 and v is not None]
    if not judged:
        return None
    return float(sum(w * float(v) for w, v in judged))
