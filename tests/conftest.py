"""Shared test fixtures.

The tokenizer and model fixtures build a tiny trained tokenizer and tiny random LLaMA models
(ours and HF's) from scratch in well under a second; nothing is downloaded.
"""

import random
import sys
from pathlib import Path

import pytest
import torch

from tl.hf import save_hf
from tl.model import ModelArgs, Transformer
from tl.tokenizer import SentencePieceTokenizer, load_tokenizer, train_bpe_tokenizer, train_tokenizer

# Tests import the experiments' modules (table5, parity_real) as the scripts do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

# The read-only benchmark copies live next to the repository (../shared/data); tests that use
# them skip when they are absent, so the suite runs anywhere.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


_WORDS = (
    "the weather in Paris is sunny today get_weather get_forecast search_flights city date "
    "temperature query result error value name number list of items user asked for a "
    "function call returned Output Assistant User System def Args str int float"
).split()


def sample_texts(n: int = 300, seed: int = 0) -> list[str]:
    """Deterministic text in the shape of the project's prompts: role headers, calls with
    JSON arguments, numbers, newlines, some non-ASCII, and EOS markers."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14)))
        city = rng.choice(["Paris", "Zürich", "São Paulo", "東京", "New York"])
        texts.append(
            f'User: {sentence}?\nAssistant: get_weather(city="{city}", days={rng.randint(0, 999)})'
            f'</s>\nOutput: {{"temp_c": {rng.uniform(-20, 40):.1f}}}\nAssistant: {sentence}.</s>'
        )
    return texts


@pytest.fixture(scope="session")
def tiny_tokenizer_path(tmp_path_factory) -> str:
    """A ~500-piece LLaMA-style BPE sentencepiece model trained on `sample_texts()`."""
    return train_tokenizer(sample_texts(), tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=500)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_path) -> SentencePieceTokenizer:
    return load_tokenizer(tiny_tokenizer_path)


@pytest.fixture(scope="session")
def tiny_bpe_dir(tmp_path_factory) -> str:
    """A directory with a ~400-token byte-level BPE tokenizer.json trained on `sample_texts()`,
    in SmolLM2's layout (tl.tokenizer.train_bpe_tokenizer)."""
    return train_bpe_tokenizer(sample_texts(), tmp_path_factory.mktemp("bpe"), vocab_size=400)


@pytest.fixture
def tiny_model_args(tiny_tokenizer) -> ModelArgs:
    """A 2-layer GQA model whose vocabulary matches `tiny_tokenizer`."""
    return ModelArgs(
        vocab_size=tiny_tokenizer.vocab_size,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=10000.0,
    )


@pytest.fixture
def make_tiny_model(tiny_model_args):
    """make_tiny_model(seed=0, **ModelArgs overrides) -> a random `Transformer` in eval mode."""

    def make(seed: int = 0, **overrides) -> Transformer:
        args = ModelArgs(**{**vars(tiny_model_args), **overrides})
        return Transformer.from_config(args, seed=seed).eval()

    return make


def save_model(model: Transformer, path, **kwargs) -> None:
    """An HF checkpoint directory of `model` (tl.hf.save_hf of its state dict)."""
    save_hf(model.state_dict(), model.args, path, **kwargs)


def hf_llama_like(model: Transformer):
    """A `transformers.LlamaForCausalLM` with exactly `model`'s config and weights (fp32)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(**model.args.to_hf_config())
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.load_state_dict(model.state_dict(), strict=True)
    return hf


@pytest.fixture
def make_hf_twin():
    """make_hf_twin(model) -> HF `LlamaForCausalLM` with the same config and weights."""
    return hf_llama_like


def left_pad(prompts: list[list[int]], pad_id: int):
    """(input_ids, attention_mask) [B, max_len] for left-padded prompts (HF convention)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread (restored after): for tiny models a second thread costs
    more than it gives, and on a shared 2-core machine it oversubscribes the cores badly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
