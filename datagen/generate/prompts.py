"""Prompt templates and few-shot exemplars, loaded from files in ``prompts/``.

A template is a file ``prompts/<name>.txt``, versioned by name (``judge.v1``)
and never edited in place: a changed prompt is a new file. Its text has
slots ``{{name}}`` and optional sections, each opened by a line
``=== <section> ===``:

- ``prompt`` — a raw text prompt, sent as is (base models, R1-Zero). A file
  without section lines is one ``prompt`` section.
- ``system`` / ``user`` — a chat; rendering gives ``messages`` that the
  backend passes through the model's own chat template.
- ``assistant`` (chat only, optional) — a pre-fill: the assistant's reply
  starts with this text (e.g. ``<think>``) and the model continues it. It
  renders as a last ``assistant`` message; backends put it after the chat
  template's generation prompt.
- ``exemplar`` — how one few-shot exemplar is written; the ``{{exemplars}}``
  slot receives k of them, separated by a blank line.

Slots: ``prompt``, ``language`` (the name of the row's answer language),
``reference`` (the row's gold answer), ``response`` (judge), ``exemplars``;
inside ``exemplar``: ``prompt``, ``reasoning``, ``summary``. An unknown slot
fails when the template loads; a slot with no value fails when it renders.

``{{`` is the slot marker (not ``{``), so LaTeX braces in templates and
problems need no escaping.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datagen.records import normalize_prompt

#: The repository's prompts folder (``prompts/`` beside the ``datagen`` package).
PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"

_SECTION = re.compile(r"^=== (prompt|system|user|assistant|exemplar) ===[ \t]*$", re.MULTILINE)
_SLOT = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_SLOTS = {"prompt", "language", "reference", "response", "exemplars"}
_EXEMPLAR_SLOTS = {"prompt", "reasoning", "summary"}

#: Names for the ``{{language}}`` slot; an unlisted code is written as is.
LANGUAGE_NAMES = {
    "en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish",
    "it": "Italian", "pt": "Portuguese", "ru": "Russian", "ja": "Japanese", "ko": "Korean",
    "ar": "Arabic", "hi": "Hindi", "vi": "Vietnamese", "nl": "Dutch", "tr": "Turkish",
}

Messages = list[dict[str, str]]


class TemplateError(ValueError):
    """A template file that cannot be used, or a render that lacks a value."""


@dataclasses.dataclass(frozen=True)
class Template:
    """A loaded template: its sections and the hash of its file text."""

    name: str
    sections: dict[str, str]
    sha256: str

    @property
    def is_chat(self) -> bool:
        return "user" in self.sections

    @property
    def uses_exemplars(self) -> bool:
        return any("exemplars" in _slots(text) for text in self.sections.values())

    def render(self, values: Mapping[str, str | None]) -> str | Messages:
        """Fill the slots: a string for a ``prompt`` template, messages for a chat."""
        if not self.is_chat:
            return _fill(self.sections["prompt"], values, self.name)
        messages = []
        for role in ("system", "user", "assistant"):
            if role in self.sections:
                messages.append({"role": role, "content": _fill(self.sections[role], values, self.name)})
        return messages

    def render_exemplar(self, exemplar: Mapping[str, Any]) -> str:
        if "exemplar" not in self.sections:
            raise TemplateError(f"template {self.name!r} has an {{{{exemplars}}}} slot but no '=== exemplar ===' section")
        return _fill(self.sections["exemplar"], exemplar, self.name)


def _slots(text: str) -> set[str]:
    return set(_SLOT.findall(text))


def _fill(text: str, values: Mapping[str, Any], name: str) -> str:
    def sub(match: re.Match) -> str:
        value = values.get(match.group(1))
        if value is None:
            raise TemplateError(f"template {name!r}: no value for slot {{{{{match.group(1)}}}}}")
        return str(value)

    return _SLOT.sub(sub, text)


@functools.lru_cache(maxsize=64)
def _load_template(name: str, prompts_dir: str) -> Template:
    path = Path(prompts_dir) / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in Path(prompts_dir).glob("*.txt"))
        raise TemplateError(f"no template {name!r} in {prompts_dir} (have: {', '.join(known) or 'none'})")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    if len(parts) == 1:
        sections = {"prompt": text}
    else:
        if parts[0].strip():
            raise TemplateError(f"{path}: text before the first '=== section ===' line")
        sections = {}
        for section, body in zip(parts[1::2], parts[2::2]):
            if section in sections:
                raise TemplateError(f"{path}: section {section!r} appears twice")
            sections[section] = body
    # A section ends with the newline before the next marker / end of file; that
    # newline belongs to the file layout, not to the prompt.
    sections = {k: (v.removeprefix("\n")).removesuffix("\n") for k, v in sections.items()}
    if "prompt" in sections and ({"system", "user", "assistant"} & sections.keys()):
        raise TemplateError(f"{path}: use either a 'prompt' section or 'system'/'user' sections, not both")
    if "prompt" not in sections and "user" not in sections:
        raise TemplateError(f"{path}: needs a 'prompt' or a 'user' section")
    for section, body in sections.items():
        allowed = _EXEMPLAR_SLOTS if section == "exemplar" else _SLOTS
        unknown = _slots(body) - allowed
        if unknown:
            raise TemplateError(f"{path}: unknown slot(s) {sorted(unknown)} in section {section!r}; allowed: {sorted(allowed)}")
    return Template(name, sections, hashlib.sha256(text.encode()).hexdigest())


def load_template(name: str, prompts_dir: str | Path | None = None) -> Template:
    """Load ``<prompts_dir>/<name>.txt`` (cached). Raises ``TemplateError``."""
    return _load_template(name, str(prompts_dir or PROMPTS_DIR))


def load_exemplars(name: str, prompts_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Load ``<prompts_dir>/exemplars/<name>.jsonl``: rows with prompt, reasoning, summary."""
    path = Path(prompts_dir or PROMPTS_DIR) / "exemplars" / f"{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows, 1):
        missing = [k for k in ("prompt", "reasoning", "summary") if not isinstance(row.get(k), str)]
        if missing:
            raise TemplateError(f"{path}: line {i} lacks string field(s) {missing}")
    return rows


def prompt_hash(template: Template, exemplars: Sequence[Mapping[str, Any]] = ()) -> str:
    """Hash of what shapes the prompt: the template file and, when used, the exemplars."""
    h = hashlib.sha256(template.sha256.encode())
    if template.uses_exemplars:
        for ex in exemplars:
            h.update(json.dumps(ex, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def pick_exemplars(
    problem_row: Mapping[str, Any], exemplars: Sequence[Mapping[str, Any]], *, k: int, seed: int
) -> list[Mapping[str, Any]]:
    """k exemplars for one problem, drawn by a RNG seeded with (seed, problem_id).

    The problem itself (same normalized prompt) is never among them; when it
    is in the exemplar file, the draw is from the others (so at most
    ``len(exemplars) - 1`` come back). Deterministic across processes: a
    string seed is hashed by ``random`` with SHA-512, not Python's salted hash.
    """
    target = normalize_prompt(problem_row["prompt"])
    pool = [ex for ex in exemplars if normalize_prompt(ex["prompt"]) != target]
    rng = random.Random(f"{seed}:{problem_row.get('problem_id', target)}")
    return rng.sample(pool, min(k, len(pool)))


def render_prompt(
    template_name: str,
    problem_row: Mapping[str, Any],
    *,
    exemplars: Sequence[Mapping[str, Any]] = (),
    k: int = 0,
    seed: int = 0,
    prompts_dir: str | Path | None = None,
) -> str | Messages:
    """Render a template for one problem row: a string (raw prompt) or chat messages.

    Few-shot templates get ``k`` exemplars drawn by ``pick_exemplars``.
    """
    template = load_template(template_name, prompts_dir)
    language = problem_row.get("language")
    values: dict[str, str | None] = {
        "prompt": problem_row["prompt"],
        "language": LANGUAGE_NAMES.get(language, language) if language else None,
        "reference": problem_row.get("answer"),
        "response": problem_row.get("response"),
    }
    if template.uses_exemplars:
        chosen = pick_exemplars(problem_row, exemplars, k=k, seed=seed)
        if not chosen:
            raise TemplateError(f"template {template_name!r} needs exemplars; got none to draw from (k={k})")
        values["exemplars"] = "\n\n".join(template.render_exemplar(ex) for ex in chosen)
    return template.render(values)
