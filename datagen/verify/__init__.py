"""Verifiers: plain functions returning typed verdicts (``datagen.records.verdict``).

- ``datagen.verify.math.verify_math`` / ``verify_math_batch`` — final answers;
- ``datagen.verify.code.verify_code`` / ``verify_code_batch`` — code in a sandbox;
- ``datagen.verify.format.verify_format`` — the think/answer shape;
- ``datagen.verify.runner.verify_rows`` / ``VERIFIERS`` — many rows, outcome counts;
- ``datagen.verify.rewards.REWARDS`` — GRPO reward functions built on them.

Nothing is imported here: each verifier pulls in its own heavy dependencies.
"""
