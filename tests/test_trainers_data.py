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


def test_block_mask_keeps_packed_samples_apart():
    a = tokenize_chat(TOK, CHAT)
    mask = collate(pack([a, a], max_length=16), TOK.pad_token_id)["attention_mask"][0, 0]
    assert mask[8, 7].item() is False  # 2nd sample's first token cannot see the 1st sample
    assert mask[9, 8].item() is True and mask[7, 0].item() is True


def test_packed_logits_equal_separate_logits():
    model = build_model(TOK).eval()
    a = tokenize_chat(TOK, CHAT)
    b = tokenize_chat(TOK, [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "defg"}])
    batch = collate(pack([a, b], max_length=64), TOK.pad_token_id)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits[0, len(a.input_ids):]
        alone = model(input_ids=torch.tensor([b.input_ids])).logits[0]
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-4)
