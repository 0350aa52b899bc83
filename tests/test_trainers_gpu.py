"""bf16 SFT and GRPO steps on a ~0.5B Qwen2-style model (random weights). GPU only."""

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


def half_b_model(tok):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return Qwen2ForCausalLM(cfg).cuda()


def test_sft_bf16_steps(tmp_path):
    from datagen.tinymodel import build_tokenizer
    from trainers.config import SFTConfig
    from trainers.sft import train_sft

    tok = build_tokenizer()
    rows = [{"messages": [{"role": "user", "content": "x" * 200}, {"role": "assistant", "content": "y" * 300}]}] * 64
    res = train_sft(SFTConfig(output_dir=str(tmp_path), max_steps=4, max_length=2048, per_device_batch_size=4,
                              precision="bf16"), rows, model=half_b_model(tok), tokenizer=tok)
    print("sft tokens/s", res.metrics["tokens_per_s"], "peak GiB", torch.cuda.max_memory_allocated() / 2**30)


def test_grpo_bf16_steps(tmp_path):
    from trainers.config import GRPOConfig
    from trainers.grpo import train_grpo
    from trainers.toy import ToyLastDigit, toy_tokenizer

    tok = toy_tokenizer()
    res = train_grpo(GRPOConfig(output_dir=str(tmp_path), max_steps=2, prompts_per_step=8, num_generations=8,
                                max_new_tokens=64, rewards={"toy_accuracy": 1.0}, precision="bf16", beta=0.04),
                     ToyLastDigit().train_rows(), model=half_b_model(tok), tokenizer=tok)
    print("grpo s/step", res.metrics["time/step_s"], "peak GiB", torch.cuda.max_memory_allocated() / 2**30)
