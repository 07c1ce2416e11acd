"""A tiny "SFT checkpoint" for PPO tests: sft_tiny's trajectories and tokenizer, and a small random
LLaMA saved in HF format with tokenizer.model beside it, exactly as train_sft.py exports."""

import os

import sft_tiny
from conftest import save_model

from tl.model import ModelArgs, Transformer


def write_setup(root, n_records: int = 16, hidden: int = 32, layers: int = 2) -> dict:
    """Writes `train.jsonl` and `model/` under root; returns their paths and the tokenizer."""
    root = os.fspath(root)
    recs = sft_tiny.records(n_records)
    data = sft_tiny.write_jsonl(os.path.join(root, "train.jsonl"), recs)
    tokenizer = sft_tiny.tokenizer(root, recs)
    args = ModelArgs(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden + 6,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.1,
    )
    model_dir = os.path.join(root, "model")
    save_model(Transformer.from_config(args, seed=0), model_dir, tokenizer=tokenizer)
    return {"data": data, "model": model_dir, "tokenizer": tokenizer}
