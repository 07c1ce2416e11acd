"""The model equals transformers' LlamaForCausalLM: logits, checkpoints both ways, the KV cache."""

import json

import pytest
import torch
from conftest import hf_llama_like, left_pad, save_model

from tl.hf import load_hf
from tl.model import ModelArgs, Transformer

transformers = pytest.importorskip("transformers")

VOCAB = 320

# name -> (LlamaConfig overrides, config.json style). Weights get std 0.1 (HF's init reads
# initializer_range) and random norm gains, so attention is peaked and a RoPE, norm or GQA
# mistake moves the logits by far more than the 1e-4 tolerance.
CASES = {
    "mha-untied-theta1e4-v5": (dict(num_key_value_heads=4, rope_theta=1e4), "v5"),
    "gqa-theta1e6-v4": (dict(num_key_value_heads=2, rope_theta=1e6), "v4"),
    "gqa-untied-theta1e6-odd-mlp-v5": (
        dict(num_key_value_heads=2, rope_theta=1e6, intermediate_size=97),
        "v5",
    ),
    "gqa-tied-theta1e5-v5": (dict(num_key_value_heads=2, rope_theta=1e5, tie_word_embeddings=True), "v5"),
    "mqa-theta1e4-head-dim-24-v4": (
        dict(num_key_value_heads=1, rope_theta=1e4, head_dim=24, intermediate_size=131),
        "v4",
    ),
}


def make_hf(seed: int = 0, **overrides):
    config = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        rms_norm_eps=1e-5,
        max_position_embeddings=128,
        initializer_range=0.1,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**config, **overrides})).eval()
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    return hf


def to_v4_style(config_file):
    """Rewrites a transformers-5 config.json the way transformers 4.x wrote it."""
    with open(config_file) as f:
        config = json.load(f)
    rope = config.pop("rope_parameters")
    config["rope_theta"], config["rope_scaling"] = rope["rope_theta"], None
    config["torch_dtype"] = config.pop("dtype", None) or "float32"
    with open(config_file, "w") as f:
        json.dump(config, f)


def sample_batch(seed: int = 0):
    """Three left-padded rows of different lengths, ids avoiding the special tokens."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (13, 5, 9)]
    return left_pad(prompts, pad_id=0)


def hf_logits(hf, ids, mask):
    positions = (mask.cumsum(-1) - 1).clamp_min(0)  # what HF's generate passes for left padding
    return hf(ids, attention_mask=mask, position_ids=positions).logits


def assert_real_close(ours, theirs, mask, atol=1e-4):
    real = mask.bool()
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[real], theirs[real], atol=atol, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_logits_equal_hf_for_hf_checkpoint(case, tmp_path):
    overrides, style = CASES[case]
    hf = make_hf(**overrides)
    hf.save_pretrained(tmp_path)
    if style == "v4":
        to_v4_style(tmp_path / "config.json")
    ours = load_hf(tmp_path).eval()
    assert ours.args.rope_theta == overrides["rope_theta"]
    ids, mask = sample_batch()
    with torch.no_grad():
        assert_real_close(ours(ids, attention_mask=mask), hf_logits(hf, ids, mask), mask)
        full = torch.ones_like(mask)
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=0)
        assert ours(ids).abs().max() > 1.0  # logits are not all ~0: the comparison has teeth
        # rope theta matters at these positions: the other theta moves the logits a lot
        ours.args.rope_theta = 1e4 if overrides["rope_theta"] != 1e4 else 1e6
        assert (ours(ids, attention_mask=full) - hf(ids).logits).abs().max() > 1e-2


@pytest.mark.parametrize("sharded", [False, True], ids=["single-file", "sharded"])
def test_bf16_checkpoint_single_and_sharded(sharded, tmp_path):
    hf = make_hf(num_key_value_heads=2, rope_theta=1e6).to(torch.bfloat16)
    hf.save_pretrained(tmp_path, max_shard_size="40KB" if sharded else "5GB")
    assert (tmp_path / "model.safetensors.index.json").exists() == sharded
    # Stored dtype kept: bit-identical bf16 weights, no upcast copy.
    ours_bf16 = load_hf(tmp_path)
    assert ours_bf16.args.dtype == "bfloat16"
    hf_state = hf.state_dict()
    for key, value in ours_bf16.state_dict().items():
        assert value.dtype == torch.bfloat16 and torch.equal(value, hf_state[key]), key
    # The meaningful logit comparison: both load the same bf16 weights upcast to fp32.
    ours = load_hf(tmp_path, dtype=torch.float32).eval()
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids, mask = sample_batch(1)
    with torch.no_grad():
        assert_real_close(ours(ids, attention_mask=mask), hf_logits(theirs, ids, mask), mask)
        # bf16 compute too, loosely: two bf16 implementations agree to bf16 precision
        bf16_diff = ours_bf16.eval()(ids).float() - hf(ids).logits.float()
        assert bf16_diff.abs().max() < 0.1 * hf(ids).logits.float().abs().max()


@pytest.mark.parametrize("shard_size", [5 * 10**9, 30_000], ids=["single-file", "sharded"])
def test_save_pretrained_round_trip_through_hf(shard_size, make_tiny_model, tmp_path):
    ours = make_tiny_model(seed=3, initializer_range=0.1, rope_theta=1e6)
    save_model(ours, tmp_path, max_shard_size=shard_size)
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert theirs.config.rope_parameters["rope_theta"] == 1e6
    assert theirs.lm_head.weight.data_ptr() != theirs.model.embed_tokens.weight.data_ptr()
    ids, mask = sample_batch(2)
    ids = ids % ours.args.vocab_size
    with torch.no_grad():
        assert_real_close(ours(ids, attention_mask=mask), hf_logits(theirs, ids, mask), mask)
    again = load_hf(tmp_path)
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_tied_embeddings_round_trip_through_hf(make_tiny_model, tmp_path):
    """A tied model has one output matrix, the embedding: its state dict and checkpoint hold it
    once, transformers loads it tied, and the logits agree."""
    ours = make_tiny_model(seed=4, initializer_range=0.1, tie_word_embeddings=True)
    assert "lm_head.weight" not in ours.state_dict()
    assert ours.output_weight() is ours.model.embed_tokens.weight
    save_model(ours, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["tie_word_embeddings"] is True
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert theirs.lm_head.weight.data_ptr() == theirs.model.embed_tokens.weight.data_ptr()
    ids, mask = sample_batch(4)
    ids = ids % ours.args.vocab_size
    with torch.no_grad():
        assert_real_close(ours(ids, attention_mask=mask), hf_logits(theirs, ids, mask), mask)
    # A tied checkpoint that stores lm_head.weight anyway (some do) loads, ignoring it, as HF does.
    theirs.save_pretrained(tmp_path / "with_head")
    again = load_hf(tmp_path / "with_head")
    assert torch.equal(again.output_weight(), ours.output_weight())


def test_tied_embeddings_train_as_one_matrix(make_tiny_model):
    """The embedding gets the gradient of both its uses, and an optimizer step moves the output
    layer with it."""
    model = make_tiny_model(tie_word_embeddings=True).train()
    ids = torch.randint(3, model.args.vocab_size, (2, 7))
    torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    assert len(list(model.parameters())) == len(model.state_dict())  # no shared entry counted twice
    grad = model.model.embed_tokens.weight.grad
    unused = sorted(set(range(model.args.vocab_size)) - set(ids.flatten().tolist()))
    assert grad[unused].abs().sum() > 0  # rows never looked up still learn through the output layer


def test_state_dict_keys_are_hf_names(make_tiny_model):
    ours = make_tiny_model()
    assert set(ours.state_dict()) == set(hf_llama_like(ours).state_dict())
    assert ours.layers is ours.model.layers and len(ours.layers) == 2


def test_from_config_init_is_seeded_and_hf_like(tiny_model_args):
    a, b = Transformer.from_config(tiny_model_args, seed=1), Transformer.from_config(tiny_model_args, seed=1)
    c = Transformer.from_config(tiny_model_args, seed=2)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    weight = a.model.layers[0].mlp.up_proj.weight
    assert abs(weight.std().item() - 0.02) < 0.002 and abs(weight.mean().item()) < 0.002
    assert torch.equal(a.model.norm.weight, torch.ones_like(a.model.norm.weight))
    assert (
        Transformer.from_config(tiny_model_args, dtype=torch.bfloat16).lm_head.weight.dtype == torch.bfloat16
    )


def test_config_v4_and_v5_forms_give_the_same_args():
    common = dict(
        model_type="llama",
        vocab_size=32016,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        rms_norm_eps=1e-5,
        max_position_embeddings=16384,
    )
    v4 = ModelArgs.from_hf_config(
        {**common, "rope_theta": 1e6, "rope_scaling": None, "torch_dtype": "bfloat16"}
    )
    v5 = ModelArgs.from_hf_config(
        {**common, "dtype": "bfloat16", "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}
    )
    assert v4 == v5
    assert (v4.rope_theta, v4.dtype, v4.num_key_value_heads, v4.head_dim) == (1e6, "bfloat16", 32, 128)
    written = v4.to_hf_config()
    assert written["rope_parameters"]["rope_theta"] == written["rope_theta"] == 1e6
    assert ModelArgs.from_hf_config(written) == v4
    assert transformers.LlamaConfig(**written).rope_parameters["rope_theta"] == 1e6


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_type": "mistral"}, "expected model_type 'llama', found 'mistral'"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope type 'linear' is not implemented"),
        ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}}, "rope type 'llama3'"),
        ({"hidden_act": "gelu"}, "expected hidden_act 'silu'"),
        ({"attention_bias": True}, "attention_bias=true is not supported"),
        ({"mlp_bias": True}, "mlp_bias=true is not supported"),
    ],
)
def test_config_rejects_what_is_not_implemented(change, message):
    config = {
        "model_type": "llama",
        "vocab_size": 10,
        "hidden_size": 8,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "intermediate_size": 16,
        **change,
    }
    with pytest.raises(ValueError, match=message):
        ModelArgs.from_hf_config(config, source="x/config.json")


def test_left_padding_and_cache_equal_full_recompute(make_tiny_model):
    model = make_tiny_model(seed=5, initializer_range=0.1)
    ids, mask = sample_batch(3)
    ids = ids % model.args.vocab_size
    with torch.no_grad():
        full = model(ids, attention_mask=mask)
        for row in range(ids.shape[0]):  # a padded row equals the same prompt alone
            alone = ids[row, mask[row].bool()][None]
            torch.testing.assert_close(full[row, mask[row].bool()], model(alone)[0], atol=1e-5, rtol=0)
        # prefill the first 6 positions, then one token at a time through the cache
        cache = model.new_cache(ids.shape[1])
        steps = [model(ids[:, :6], attention_mask=mask[:, :6], cache=cache)]
        for t in range(6, ids.shape[1]):
            steps.append(model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache))
        assert cache.length == ids.shape[1]
        assert_real_close(torch.cat(steps, 1), full, mask, atol=1e-5)
        # chunked prefill without padding: a causal mask offset by the cached positions
        cache = model.new_cache(16)
        chunks = torch.cat([model(ids[:1, :5], cache=cache), model(ids[:1, 5:], cache=cache)], 1)
        torch.testing.assert_close(chunks, model(ids[:1]), atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="KV cache overflow"):
            model(ids[:1, :8], cache=cache)


def test_hidden_states_and_logits_to_keep(make_tiny_model):
    model = make_tiny_model()
    ids = torch.randint(3, model.args.vocab_size, (2, 7))
    with torch.no_grad():
        logits = model(ids)
        hidden = model(ids, return_hidden=True)
        assert hidden.shape == (2, 7, model.args.hidden_size)
        torch.testing.assert_close(model.lm_head(hidden), logits)
        torch.testing.assert_close(model(ids, logits_to_keep=2), logits[:, -2:])
        keep = torch.tensor([[0, 1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
        torch.testing.assert_close(model(ids, logits_at=keep), logits[keep])  # [4, V], row-major order
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\)"):
        model(ids, attention_mask=torch.ones(2, 5))


def test_forward_trains(make_tiny_model):
    """Gradients flow to every parameter (training uses this same forward)."""
    model = make_tiny_model().train()
    ids = torch.randint(3, model.args.vocab_size, (2, 7))
    torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
