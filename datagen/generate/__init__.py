"""Generation: backends, prompt templates, and the sharded resumable stage.

Public entry points (what the Prefect generate flow calls):

- ``GenerateConfig`` (+ ``SamplingConfig``, backend configs) — typed config.
- ``make_backend(config.backend) -> Backend``.
- ``plan_shards(problems, config, shard_size) -> list[Shard]``.
- ``generate_shard(problems, backend, config, *, shard_dir, shard_name) -> Path``.
- ``generate(problems, backend, config, *, work_dir, shard_size) -> list[Path]``.
- ``render_prompt(template_name, problem_row, *, exemplars, k, seed)``.
"""

from datagen.generate.backends import Backend, GenOutput, GenRequest, GenResult, make_backend
from datagen.generate.config import (
    GenerateConfig,
    HFBackendConfig,
    OpenAIBackendConfig,
    SamplingConfig,
    VLLMBackendConfig,
)
from datagen.generate.prompts import load_exemplars, load_template, render_prompt
from datagen.generate.stage import Shard, generate, generate_rows, generate_shard, plan_shards, read_marker

__all__ = [
    "Backend",
    "GenOutput",
    "GenRequest",
    "GenResult",
    "GenerateConfig",
    "HFBackendConfig",
    "OpenAIBackendConfig",
    "SamplingConfig",
    "Shard",
    "VLLMBackendConfig",
    "generate",
    "generate_rows",
    "generate_shard",
    "load_exemplars",
    "load_template",
    "make_backend",
    "plan_shards",
    "read_marker",
    "render_prompt",
]
