"""GRPO with R1's language-consistency reward removes language mixing from a
tiny policy, while accuracy holds.

The toy: ``NNN+1=`` -> the last digit of NNN + 1 (``trainers.toy.ToyLastDigit``),
answered after a two-step "chain of thought" whose steps each come in two
vocabularies for the same step: English (" We add one.") or Chinese
("我们加一。"). Each step is one token, so a sampled output is e.g.
``<think> We add one.我们检查最后一位。</think>7`` — mixed. A short SFT warm
start teaches the shape and the answer with the two vocabularies at 50/50,
so the policy's samples mix languages. Then two GRPO runs from the same
weights, same seed, same steps: accuracy alone, and accuracy +
``language_consistency`` (weights from a YAML config; target language from
each row's ``language``). The mixing rate of held-out samples is measured with
the same measure (``datagen.language``) the filter uses.
"""

from __future__ import annotations

import copy
import random
import re

import torch
import yaml

from datagen.language import analyze
from datagen.records import split_completion
from datagen.tinymodel import SPECIAL_TOKENS, build_model
from trainers.config import GRPOConfig
from trainers.grpo import chat_prompt, train_grpo
from trainers.toy import ToyLastDigit

EN_STEPS = [" We add one.", " We check the last digit.", " Then we carry."]
ZH_STEPS = ["我们加一。", "我们检查最后一位。", "然后进位。"]
STEPS = 30


def build_tokenizer():
    """Digits, '+', '=' and the six step tokens, with a chat template that pre-fills ``<think>``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for t in list("0123456789+=") + EN_STEPS + ZH_STEPS:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    steps = "|".join(re.escape(s) for s in EN_STEPS + ZH_STEPS)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(f"{steps}|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    template = ("{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|><think>' }}{% endif %}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|end|>", unk_token="<unk>", pad_token="<pad>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<s>", "<|end|>", "<unk>", "<pad>")],
        chat_template=template, padding_side="left")


def step_accuracy(completions, answer, **_):
    """1.0 when the text after ``</think>`` is the gold digit (the template pre-filled ``<think>``)."""
    out = []
    for text, gold in zip(completions, answer):
        split = split_completion(text, think_prefilled=True)
        out.append(float(split.closed and (split.summary or "").strip() == gold))
    return out


def warm_start(model, tok, rows, *, steps=800, seed=0):
    """SFT on the right answer after two steps drawn 50/50 from either vocabulary (the mixing prior)."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = {s: tok.convert_tokens_to_ids(s) for s in EN_STEPS + ZH_STEPS + ["</think>"] + list("0123456789")}
    prompts = [tok(chat_prompt(tok, r["prompt"], None), add_special_tokens=False)["input_ids"] for r in rows]
    model.train()
    for _ in range(steps):
        seqs, masks = [], []
        for i in rng.sample(range(len(rows)), 64):
            comp = [ids[rng.choice(EN_STEPS if rng.random() < 0.5 else ZH_STEPS)] for _ in range(2)]
            comp += [ids["</think>"], ids[rows[i]["answer"]], tok.eos_token_id]
            seqs.append(prompts[i] + comp)
            masks.append([0] * len(prompts[i]) + [1] * len(comp))
        x = torch.tensor(seqs)
        logits = model(input_ids=x).logits[:, :-1]
        loss_mask = torch.tensor(masks)[:, 1:].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                 reduction="none").reshape(loss_mask.shape)
        loss = (loss * loss_mask).sum() / loss_mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def held_out_samples(model, tok, rows, *, n_per_prompt=4, seed=123):
    """Sampled (temperature 1) completions on held-out prompts, decoded like the trainer decodes them."""
    torch.manual_seed(seed)
    tok.padding_side = "left"
    texts = [chat_prompt(tok, r["prompt"], None) for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=5,
                             num_return_sequences=n_per_prompt, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    model.train()
    comps = []
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        if tok.eos_token_id in row:
            row = row[: row.index(tok.eos_token_id)]
        comps.append(tok.decode(row, skip_special_tokens=False).replace(tok.pad_token, ""))
    golds = [r["answer"] for r in rows for _ in range(n_per_prompt)]
    return comps, golds


def measure(model, tok, rows):
    """(mixing rate: mean share of non-English words in the reasoning, share of samples with any,
    accuracy) on held-out samples."""
    comps, golds = held_out_samples(model, tok, rows)
    shares = []
    for c in comps:
        reasoning = split_completion(c, think_prefilled=True).reasoning or ""
        shares.append(analyze(reasoning, "en").mixing)
    acc = sum(step_accuracy(comps, golds)) / len(comps)
    return sum(shares) / len(shares), sum(s > 0 for s in shares) / len(shares), acc


def run(tmp_path, start, tok, rows, rewards_yaml: str):
    cfg = GRPOConfig(**{
        **yaml.safe_load(rewards_yaml),
        "output_dir": str(tmp_path), "seed": 0, "learning_rate": 1e-3, "max_steps": STEPS, "prompts_per_step": 8,
        "num_generations": 8, "max_new_tokens": 5, "lr_schedule": "constant", "resume": False, "log_every": 10,
    })
    model = copy.deepcopy(start)
    train_grpo(cfg, rows, model=model, tokenizer=tok, reward_fns={"step_accuracy": step_accuracy})
    return model


def test_language_consistency_reward_removes_mixing_and_keeps_accuracy(tmp_path):
    torch.set_num_threads(1)  # tiny tensors: a second thread only spins
    task = ToyLastDigit()
    train, held = task.train_rows(), task.eval_rows()[:64]
    tok = build_tokenizer()
    start = build_model(tok, hidden_size=64, num_layers=2, num_heads=4, max_position_embeddings=32, seed=0)
    warm_start(start, tok, train)
    mix0, any0, acc0 = measure(start, tok, held)
    assert 0.3 <= mix0 <= 0.7 and any0 >= 0.5, f"the warm-started policy should mix languages: {mix0}, {any0}"
    assert acc0 >= 0.7, f"the warm start should have learned the task: {acc0}"

    plain = run(tmp_path / "acc", start, tok, train, "rewards: {step_accuracy: 1.0}\n")
    lang = run(tmp_path / "acc_lang", start, tok, train,
               "rewards:\n  step_accuracy: 1.0\n  language_consistency: 0.5\n")
    mix_plain, any_plain, acc_plain = measure(plain, tok, held)
    mix_lang, any_lang, acc_lang = measure(lang, tok, held)
    report = (f"held-out mixing (share of foreign words / samples with any): start {mix0:.3f}/{any0:.2f}, "
              f"accuracy only {mix_plain:.3f}/{any_plain:.2f}, + language_consistency {mix_lang:.3f}/{any_lang:.2f}; "
              f"accuracy: start {acc0:.2f}, accuracy only {acc_plain:.2f}, + language_consistency {acc_lang:.2f}")
    print(report)
    assert mix_lang <= 0.25 * mix_plain, report
    assert mix_lang <= 0.1, report
    assert acc_lang >= acc_plain - 0.1 and acc_lang >= 0.7, report
