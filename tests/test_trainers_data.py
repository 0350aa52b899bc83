"""Assistant-only masks and packing boundaries (trainers/data.py)."""

import torch

from datagen.tinymodel import build_model, build_tokenizer
from trainers.data import IGNORE, collate, pack, parse_messages, tokenize_chat

TOK = build_tokenizer()
CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]


def trained_tokens(sample):
    return TOK.convert_ids_to_tokens([t for t, l in zip(sample.input_ids, sample.labels) if l != IGNORE])


def test_assistant_mask_includes_eos_and_excludes_prompt():
    s = tokenize_chat(TOK, CHAT)
    assert TOK.convert_ids_to_tokens(s.input_ids) == ["<|user|>", "h", "i", "<|end|>", "<|assistant|>", "y", "o",
                                                       "<|end|>"]
    assert trained_tokens(s) == ["y", "o", "<|end|>"]


def test_every_assistant_turn_is_trained_and_system_is_not():
    chat = [{"role": "system", "content": "s"}, *CHAT, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"}]
    assert trained_tokens(tokenize_chat(TOK, chat)) == ["y", "o", "<|end|>", "a", "<|end|>"]


def test_messages_as_json_string():
    assert parse_messages('[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]')[1] == {
        "role": "assistant", "content": "y"}


def test_packing_restarts_positions_and_ignores_boundary_target():
    a = tokenize_chat(TOK, CHAT)
    b = tokenize_chat(TOK, [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "d"}])
    rows = pack([a, b], max_length=64)
    assert len(rows) == 1 and rows[0].seq_lens == [8, 8]
    assert rows[0].position_ids == list(range(8)) + list(range(8))
    assert rows[0].labels[8] == IGNORE  # seq b's first token is never predicted from seq a


def test_packing_starts_a_new_row_when_full():
    a = tokenize_chat(TOK, CHAT)
    assert [r.seq_lens for r in pack([a, a, a], max_length=16)] == [[8, 8], [8]]


def test_collate_is_flat_and_marks_boundaries_without_a_square_mask():
    a = tokenize_chat(TOK, CHAT)
    batch = collate(pack([a, a, a], max_length=16), TOK.pad_token_id)
    assert batch["input_ids"].shape == (1, 24) and "attention_mask" not in batch
    assert batch["seq_lens"] == [8, 8, 8]
    assert batch["position_ids"][0, 8].item() == 0 and batch["labels"][0, 16].item() == IGNORE


def _packed_vs_alone(model, samples):
    from trainers.packing import packed_kwargs, use_packed_attention

    use_packed_attention(model)
    batch = collate(pack(samples, max_length=4096))
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       **packed_kwargs(batch["seq_lens"])).logits[0]
        at = 0
        for s in samples:
            alone = model(input_ids=torch.tensor([s.input_ids])).logits[0]
            torch.testing.assert_close(packed[at: at + len(s.input_ids)], alone, atol=1e-5, rtol=1e-4)
            at += len(s.input_ids)
    return packed


def test_packed_logits_equal_separate_logits():
    model = build_model(TOK).eval()
    a = tokenize_chat(TOK, CHAT)
    b = tokenize_chat(TOK, [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "defg"}])
    _packed_vs_alone(model, [a, b, a])


def test_packed_attention_does_not_leak_across_samples():
    # the control: the same second sample after a different first one gives the same logits
    model = build_model(TOK).eval()
    a = tokenize_chat(TOK, CHAT)
    c = tokenize_chat(TOK, [{"role": "user", "content": "zzzzzz"}, {"role": "assistant", "content": "q"}])
    b = tokenize_chat(TOK, [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "defg"}])
    p1 = _packed_vs_alone(model, [a, b])[len(a.input_ids):]
    p2 = _packed_vs_alone(model, [c, b])[len(c.input_ids):]
    torch.testing.assert_close(p1, p2, atol=1e-5, rtol=1e-4)
    # and a plain SDPA run over the concatenation (no boundaries) does differ: the test can fail
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        leaky = model(input_ids=torch.tensor([a.input_ids + b.input_ids])).logits[0, len(a.input_ids):]
    assert not torch.allclose(leaky, p1, atol=1e-4)


def test_packed_attention_with_grouped_kv_heads_matches():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(TOK), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    a = tokenize_chat(TOK, CHAT)
    b = tokenize_chat(TOK, [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "defg"}])
    _packed_vs_alone(model, [a, b])
