"""Tiny causal LMs and tokenizers built locally — no hub, no downloads.

The tests, the benchmarks and ``make demo`` need real transformers models and
tokenizers, and nothing can be downloaded here. This module builds them:

- ``build_tokenizer``: a character-level ``PreTrainedTokenizerFast`` whose
  special tokens (``<think>``, ``</think>``, ``<answer>``, ``</answer>``, the
  chat-role markers) are single tokens, with a chat template (optionally one
  that pre-fills ``<think>``, like DeepSeek-R1's own). Saved with
  ``save_pretrained`` it loads back from a local path like any other.
- ``build_model``: a randomly initialised Llama-style causal LM from a config.

A character vocabulary keeps the models tiny and lets a toy task (arithmetic)
be learned in minutes on a CPU.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL_TOKENS = [
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]

# The chat template. Each message is "<|role|>content<|end|>"; the generation
# prompt opens the assistant turn. With ``prefill_think`` the generation prompt
# also writes "<think>" so completions start inside the reasoning (the
# DeepSeek-R1 template does this).
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{PREFILL}{% endif %}"
)


def default_charset() -> str:
    """Printable ASCII plus newline: enough for arithmetic, English and LaTeX."""
    return "".join(sorted(set(string.printable) - {"\x0b", "\x0c", "\r"}))


def build_tokenizer(charset: str | None = None, *, prefill_think: bool = False):
    """A character-level fast tokenizer with the special tokens above.

    Unknown characters map to ``<unk>``. ``eos_token`` is ``<|end|>`` (the end
    of an assistant turn), so a model trained on chats learns to stop there.
    """
    chars = charset if charset is not None else default_charset()
    return _wordlevel_tokenizer(chars, ".", prefill_think=prefill_think)


def _wordlevel_tokenizer(pieces, split: str, *, prefill_think: bool):
    """A word-level fast tokenizer: the special tokens, then ``pieces`` (in order, once each);
    text is pre-split by the regex ``split``; the chat template and special tokens of this module."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(split), behavior="isolated")
    tok.decoder = decoders.Fuse()
    template = _CHAT_TEMPLATE.replace("{PREFILL}", "{{ '<think>' }}" if prefill_think else "")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<s>", "<|end|>", "<unk>", "<pad>")],
        chat_template=template,
        padding_side="left",
    )


def build_model(
    tokenizer,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 1024,
    seed: int = 0,
):
    """A randomly initialised Llama-style causal LM sized for the tokenizer.

    Llama, not Qwen2: transformers 5 forces ``AutoTokenizer`` to its own
    byte-level ``Qwen2Tokenizer`` for any ``qwen2`` model folder, which
    silently drops this character tokenizer's spaces and newlines when a
    ``save_tiny`` folder is loaded back; for ``llama`` it honours the saved
    ``tokenizer.json``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny(path: str | Path, *, prefill_think: bool = False, seed: int = 0, charset: str | None = None,
              **model_kwargs) -> Path:
    """Build a tokenizer + model and save both under ``path`` (a local model dir).

    ``charset``: the tokenizer's characters (default ``default_charset()``); a small one
    (e.g. digits) makes a random model's one-token answers right by chance more often."""
    path = Path(path)
    tokenizer = build_tokenizer(charset, prefill_think=prefill_think)
    model = build_model(tokenizer, seed=seed, **model_kwargs)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


#: Word-level pre-tokenization: each whitespace character, each digit, and each
#: run of other characters is one piece (so "47+35=82" is digit by digit and
#: "carry" or "个位" is one token; decoding concatenates the pieces back).
WORD_PIECES = r"\s|\d|[^\s\d]+"


def build_word_tokenizer(texts, *, prefill_think: bool = False):
    """A word-level fast tokenizer whose vocabulary is every piece of ``texts``.

    Pieces are ``WORD_PIECES`` (whitespace characters, digits, runs of other
    characters); the special tokens and chat template are ``build_tokenizer``'s.
    A piece outside the vocabulary is ``<unk>``. Deterministic: the same texts
    give the same ids.
    """
    import re

    special = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
    pieces = sorted({p for text in texts for chunk in special.split(text) for p in re.findall(WORD_PIECES, chunk)})
    return _wordlevel_tokenizer(pieces, WORD_PIECES, prefill_think=prefill_think)
