"""Typed configs for the trainers (pydantic; also the flow parameters).

YAML sets values, ``--set key=value`` overrides (``datagen.config.load``, the
one loader), unknown keys fail, and a bad combination fails at construction
with a message that says what to change. Fields marked ``where``/``how``
(``datagen.config``) say where a run writes and how it runs: they are not
part of what it computes, so a training stage's run key ignores them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datagen.config import how, where
from trainers.reward_model import RewardModelConfig


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class _TrainCommon(_Config):
    model: str | None = Field(None, description="local model dir (save_pretrained), NAME@VERSION of a model in the "
                              "store (fetched once into a local cache), or hub id; None = passed in code")
    model_store: str | None = where(None, description="store root (folder or s3://bucket/prefix) for NAME@VERSION "
                                    "models and push_to_store; None = $DATAGEN_ROOT or ./datasets")
    push_to_store: str | None = where(None, description="commit the final model (weights, tokenizer, config) as a "
                                      "version of this name in model_store")
    output_dir: str = where("runs/train")
    seed: int = 0
    learning_rate: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = Field(1.0, gt=0, description="None disables clipping")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    gradient_checkpointing: bool = how(False)
    fsdp: bool = how(False, description="with several processes: shard parameters, gradients and optimizer state "
                     "(torch FSDP2 fully_shard; CPU/gloo or GPUs) instead of replicating them (DDP)")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 autocast on a CUDA GPU that supports it, fp32 otherwise; bf16 on a CPU "
        "with native bf16 (AVX512-BF16/AMX): GRPO runs its matmuls in bf16 and attention in fp32, ~1.2x faster per "
        "step than fp32 on the project's CPU box"
    )
    log_every: int = how(1, ge=1)
    save_every: int = how(0, ge=0, description="checkpoint every N optimizer steps; 0 = only at the end")
    keep_checkpoints: int = how(2, ge=1)
    resume: bool = how(True, description="resume from the newest checkpoint in output_dir if there is one")


class SFTConfig(_TrainCommon):
    """Supervised fine-tuning on chat ``messages`` (loss on assistant tokens only)."""

    data: str | None = Field(None, description="JSONL/Parquet file of rows with a 'messages' column")
    eval_data: str | None = None
    eval_fraction: float = Field(0.0, ge=0, lt=1, description="hold out this share of rows for eval when no eval_data")
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    num_epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides num_epochs when set")
    max_length: int = Field(2048, ge=8, description="token budget of one (packed) sequence")
    packing: bool = True
    per_device_batch_size: int = Field(8, ge=1, description="sequences (packed rows) per micro-batch")
    gradient_accumulation_steps: int = Field(1, ge=1)
    eval_every: int = Field(0, ge=0, description="eval loss every N optimizer steps; 0 = only at the end")
    truncate: Literal["drop", "error"] = Field(
        "drop", description="a sample longer than max_length: drop it (counted) or fail"
    )
    token_cache: str | None = where(None, description="folder of tokenised sets (token ids + assistant masks, "
                                    "keyed by data, chat template and max_length); None = <output_dir>/tokenized")

    @model_validator(mode="after")
    def _check(self):
        if self.eval_data and self.eval_fraction:
            raise ValueError("set either eval_data or eval_fraction, not both")
        return self


class GRPOConfig(_TrainCommon):
    """GRPO (DeepSeekMath) with the DAPO / Dr. GRPO variants; see trainers/losses.py."""

    prompts: str | None = Field(None, description="JSONL/Parquet file of rows with 'prompt' (+ reward columns)")
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 1.0},
        description="reward function name -> weight; names resolve in reward_fns or trainers.rewards.REWARDS",
    )
    reward_models: dict[str, RewardModelConfig] = Field(
        default_factory=dict, description="name -> a sequence-classification reward model (trainers/reward_model.py); "
        "the name is then usable in rewards and rewards_by_domain")
    rewards_by_domain: dict[str, dict[str, float]] | None = Field(
        None, description="domain -> {reward name: weight}: each row is rewarded by its domain's rewards (R1: rules "
        "for math/code, reward models for general); used through rewards: {by_domain: 1.0}")
    learning_rate: float = Field(1e-6, gt=0)
    max_steps: int = Field(100, ge=1)
    prompts_per_step: int = Field(8, ge=1)
    num_generations: int = Field(8, ge=2, description="G: completions per prompt")
    micro_batch_size: int | None = how(None, ge=1, description="completions per forward/backward; None = all")
    share_prompt_prefix: bool = how(True, description="in the update, run each prompt through the model once and "
                                    "let its G completions attend to that one copy (same log-probs and gradients, "
                                    "less work); used where the model allows it (trainers/grpo.py)")
    mu: int = Field(1, ge=1, description="optimizer passes over each generation batch")
    epsilon: float = Field(0.2, gt=0, lt=1)
    epsilon_high: float | None = Field(None, gt=0, description="DAPO clip-higher; None = epsilon")
    beta: float = Field(0.0, ge=0, description="KL weight; 0 loads no reference model")
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the group's reward std, the global batch's, or not at all "
        "(Dr. GRPO: none)")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    sampler: Literal["hf"] = Field("hf", description="hf generate (CPU/GPU); no vLLM sampler (see trainers/grpo.py)")
    system_prompt: str | None = None
    shuffle_rewards: bool = Field(
        False, description="negative control: permute rewards across the batch before advantages (nothing to learn)"
    )

    @model_validator(mode="after")
    def _check(self):
        total = self.prompts_per_step * self.num_generations
        if self.micro_batch_size is not None and total % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size={self.micro_batch_size} must divide the {total} completions per step "
                f"(prompts_per_step x num_generations); pick a divisor of {total}"
            )
        if self.epsilon_high is not None and self.epsilon_high < self.epsilon:
            raise ValueError(
                f"epsilon_high={self.epsilon_high} < epsilon={self.epsilon}: clip-higher must be >= epsilon "
                "(or leave it unset for a symmetric clip)"
            )
        if not self.rewards:
            raise ValueError("rewards is empty; name at least one reward function, e.g. {accuracy: 1.0}")
        if self.rewards_by_domain is not None and "by_domain" not in self.rewards:
            raise ValueError("rewards_by_domain is set but rewards does not use it: set rewards: {by_domain: 1.0}")
        if self.rewards_by_domain is None and "by_domain" in self.rewards:
            raise ValueError("rewards names by_domain but rewards_by_domain is not set: give domain -> {reward: weight}")
        return self

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.num_generations
