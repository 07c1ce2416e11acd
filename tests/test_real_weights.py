"""Parity on real pretrained weights: SmolLM2-135M-Instruct converted from its GGUF file (README,
"Real checkpoints"). Skips when the converted directory is absent (set TL_SMOLLM2 to point at
it; default out/smollm2). The figures: experiments/parity_real.py, docs/MEASUREMENTS.md."""

import os
from pathlib import Path

import pytest
import torch

from tl.hf import load_hf
from tl.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("TL_SMOLLM2", ROOT / "out" / "smollm2"))

pytestmark = pytest.mark.skipif(
    not (MODEL / "config.json").is_file(), reason=f"no converted SmolLM2 at {MODEL}"
)
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def models():
    tok = load_tokenizer(MODEL)
    ours = load_hf(MODEL, dtype=torch.float32).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    return tok, ours, theirs


@pytest.fixture(scope="module")
def prompts(shared_data):
    from parity_real import benchmark_prompts

    return benchmark_prompts(str(shared_data))


def test_the_real_config_and_specials(models):
    tok, ours, _ = models
    args = ours.args
    assert (args.num_hidden_layers, args.hidden_size, args.num_attention_heads, args.num_key_value_heads) == (
        30,
        576,
        9,
        3,
    )
    assert args.tie_word_embeddings and args.rope_theta == 1e5 and args.vocab_size == tok.vocab_size == 49152
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.add_bos) == (1, 2, 0, False)  # pad is not EOS


def test_logits_and_greedy_decoding_equal_transformers(models, prompts):
    from parity_real import greedy_agreement, logits_max_delta

    tok, ours, theirs = models
    few = [prompts[0], prompts[len(prompts) // 2], prompts[-1], "The capital of France is"]
    assert logits_max_delta(ours, theirs, tok, few) <= 1e-4
    assert greedy_agreement(ours, theirs, tok, few) == (4, 4)


def test_token_ids_equal_transformers_on_every_benchmark_prompt(models, prompts):
    from parity_real import token_id_agreement

    tok = models[0]
    theirs = transformers.AutoTokenizer.from_pretrained(MODEL)
    same, n = token_id_agreement(tok, theirs, prompts, tok.id_to_piece(tok.eos_id))
    assert n > 1000 and same == n
