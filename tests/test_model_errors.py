"""Bad checkpoints fail loudly, naming the keys, the files and what was expected."""

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tl.model import ModelArgs, Transformer


@pytest.fixture
def saved(make_tiny_model, tmp_path):
    """save(max_shard_size=...) -> a checkpoint directory of a tiny untied model."""

    def save(max_shard_size=5 * 10**9):
        make_tiny_model().save_pretrained(tmp_path, max_shard_size=max_shard_size)
        return tmp_path

    return save


def rewrite(file, change):
    """Applies change(dict) to a safetensors file's tensors."""
    tensors = load_file(file)
    change(tensors)
    save_file(tensors, file, metadata={"format": "pt"})


def test_missing_shard(saved):
    path = saved(max_shard_size=30_000)
    shards = sorted(p for p in os.listdir(path) if p.startswith("model-"))
    os.remove(path / shards[1])
    with pytest.raises(
        FileNotFoundError, match=rf"model.safetensors.index.json lists shard\(s\) \['{shards[1]}'\]"
    ):
        Transformer.from_pretrained(path)


def test_wrong_shape(saved):
    path = saved()
    config = json.loads((path / "config.json").read_text())
    config["intermediate_size"] += 1
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        Transformer.from_pretrained(path)
    message = str(error.value)
    assert "model.layers.0.mlp.up_proj.weight in model.safetensors has shape [172, 64]" in message
    assert "the config implies [173, 64]" in message


def test_extra_key(saved):
    path = saved()
    rewrite(path / "model.safetensors", lambda t: t.update({"model.layers.0.mlp.bias": torch.zeros(3)}))
    with pytest.raises(
        ValueError, match=r"unexpected keys \(in model.safetensors\): model.layers.0.mlp.bias"
    ):
        Transformer.from_pretrained(path)


def test_missing_key(saved):
    path = saved()
    rewrite(path / "model.safetensors", lambda t: t.pop("lm_head.weight"))
    with pytest.raises(ValueError, match="missing keys: lm_head.weight"):
        Transformer.from_pretrained(path)


def test_index_disagrees_with_shard(saved):
    path = saved(max_shard_size=30_000)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    first = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"]["model.norm.weight"] = first
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=f"places model.norm.weight in {first}, which does not contain"):
        Transformer.from_pretrained(path)


def test_vocab_mismatch_beside_and_passed(saved, tiny_tokenizer, tiny_tokenizer_path, tmp_path_factory):
    path = saved()
    Transformer.from_pretrained(path, tokenizer=tiny_tokenizer)  # the fixture model matches it
    config = json.loads((path / "config.json").read_text())
    small = tmp_path_factory.mktemp("small")
    Transformer.from_config(ModelArgs.from_hf_config({**config, "vocab_size": 300})).save_pretrained(small)
    shutil.copyfile(tiny_tokenizer_path, small / "tokenizer.model")
    expected = (
        rf"tokenizer {small / 'tokenizer.model'} has {tiny_tokenizer.vocab_size} pieces but "
        rf"{small / 'config.json'} says vocab_size=300"
    )
    with pytest.raises(ValueError, match=expected):
        Transformer.from_pretrained(small)
    with pytest.raises(
        ValueError, match=f"has {tiny_tokenizer.vocab_size} pieces but .* says vocab_size=300"
    ):
        Transformer.from_pretrained(small, tokenizer=tiny_tokenizer_path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Transformer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="expected model_type 'llama', found 'gpt2'"):
        Transformer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "vocab_size": 8,
                "hidden_size": 8,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "intermediate_size": 8,
            }
        )
    )
    with pytest.raises(FileNotFoundError, match="expected model.safetensors or model.safetensors.index.json"):
        Transformer.from_pretrained(tmp_path)
