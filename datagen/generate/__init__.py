"""Generation: backends, prompt templates, and the sharded resumable stage.

Public entry points (what the Prefect generate flow calls):

- ``GenerateConfig`` (+ ``SamplingConfig``, backend configs) — typed config.
- ``make_backend(config.backend) -> Backend``.
- ``plan_shards(problems, config, shard_size) -> list[Shard]``.
- ``generate_checked(problems, backend, config) -> (rows, stats)``: fails a shard of errors.
- ``finish_stats(stats, config)``: stage shares and warnings from the summed shard stats.
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
from datagen.generate.stage import (
    GenerationFailed,
    Shard,
    finish_stats,
    generate,
    generate_checked,
    generate_rows,
    generate_shard,
    plan_shards,
    read_marker,
    sample_seed,
)

__all__ = [
    "Backend",
    "GenOutput",
    "GenRequest",
    "GenResult",
    "GenerateConfig",
    "GenerationFailed",
    "HFBackendConfig",
    "OpenAIBackendConfig",
    "SamplingConfig",
    "Shard",
    "VLLMBackendConfig",
    "finish_stats",
    "generate",
    "generate_checked",
    "generate_rows",
    "generate_shard",
    "load_exemplars",
    "load_template",
    "make_backend",
    "plan_shards",
    "read_marker",
    "render_prompt",
    "sample_seed",
]
