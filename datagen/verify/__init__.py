"""Verifiers: plain functions returning typed verdicts (``datagen.records.verdict``).

- ``datagen.verify.math.verify_math`` / ``verify_math_batch`` — final answers;
- ``datagen.verify.code.verify_code`` / ``verify_code_batch`` — code in a sandbox;
- ``datagen.verify.format.verify_format`` — the think/answer shape;
- ``datagen.verify.runner.verify_rows`` / ``VERIFIERS`` — many rows, outcome counts;
- ``datagen.verify.stage.verify_shard`` / ``accept`` — the verify stage: one shard's
  verdicts, then ``accepted`` per row from them;
- ``datagen.verify.rewards.REWARDS`` — GRPO reward functions built on them
  (``trainers.rewards.REWARDS`` is the table the trainer resolves names in).

Nothing is imported here: each verifier pulls in its own heavy dependencies.
"""
