"""Bad checkpoints fail loudly, naming the keys, the files and what was expected."""

import json
import os
import shutil

import pytest
import torch
from conftest import save_model
from safetensors.torch import load_file, save_file

from tl.hf import load_hf
from tl.model import ModelArgs, Transformer
from tl.tokenizer import load_tokenizer


@pytest.fixture
def saved(make_tiny_model, tmp_path):
    """save(max_shard_size=...) -> a checkpoint directory of a tiny untied model."""

    def save(max_shard_size=5 * 10**9):
        save_model(make_tiny_model(), tmp_path, max_shard_size=max_shard_size)
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
        load_hf(path)


def test_wrong_shape(saved):
    path = saved()
    config = json.loads((path / "config.json").read_text())
    config["intermediate_size"] += 1
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        load_hf(path)
    message = str(error.value)
    assert "model.layers.0.mlp.up_proj.weight in model.safetensors has shape [172, 64]" in message
    assert "the config implies [173, 64]" in message


def test_extra_key(saved):
    path = saved()
    rewrite(path / "model.safetensors", lambda t: t.update({"model.layers.0.mlp.bias": torch.zeros(3)}))
    with pytest.raises(
        ValueError, match=r"unexpected keys \(in model.safetensors\): model.layers.0.mlp.bias"
    ):
        load_hf(path)


def test_missing_key(saved):
    path = saved()
    rewrite(path / "model.safetensors", lambda t: t.pop("lm_head.weight"))
    with pytest.raises(ValueError, match="missing keys: lm_head.weight"):
        load_hf(path)


def test_index_disagrees_with_shard(saved):
    path = saved(max_shard_size=30_000)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    first = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"]["model.norm.weight"] = first
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=f"places model.norm.weight in {first}, which does not contain"):
        load_hf(path)


def test_vocab_mismatch_beside_and_passed(saved, tiny_tokenizer, tiny_tokenizer_path, tmp_path_factory):
    path = saved()
    load_hf(path, tokenizer=tiny_tokenizer)  # the fixture model matches it
    config = json.loads((path / "config.json").read_text())
    small = tmp_path_factory.mktemp("small")
    save_model(Transformer.from_config(ModelArgs.from_hf_config({**config, "vocab_size": 300})), small)
    shutil.copyfile(tiny_tokenizer_path, small / "tokenizer.model")
    expected = (
        rf"tokenizer {small / 'tokenizer.model'} has {tiny_tokenizer.vocab_size} tokens but "
        rf"{small / 'config.json'} says vocab_size=300"
    )
    with pytest.raises(ValueError, match=expected):
        load_hf(small)
    with pytest.raises(
        ValueError, match=f"has {tiny_tokenizer.vocab_size} tokens but .* says vocab_size=300"
    ):
        load_hf(small, tokenizer=load_tokenizer(tiny_tokenizer_path))


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="expected model_type 'llama', found 'gpt2'"):
        load_hf(tmp_path)
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
        load_hf(tmp_path)


def test_bad_model_directories_get_one_line_from_the_scripts(saved, tiny_bpe_dir, tmp_path_factory):
    """evaluate.py / train_sft.py on a directory without a tokenizer, with a tokenizer.json that is
    not byte-level BPE, or with a vocabulary the config disagrees with: one line naming the file."""
    import subprocess
    import sys
    from pathlib import Path

    import evaluate
    from tasks.synth import write_splits

    path = saved()  # a checkpoint without any tokenizer file
    data = tmp_path_factory.mktemp("data")
    write_splits(str(data / "train.jsonl"), n=4, heldout_single=2, heldout_multi=1)
    with pytest.raises(SystemExit, match=r"evaluate.py: .*: no tokenizer: expected tokenizer.model"):
        evaluate.main(["--model", str(path), "--data", str(data)])

    (path / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    with pytest.raises(
        SystemExit, match=r"tokenizer.json: expected a byte-level BPE .* found model type 'WordPiece'"
    ):
        evaluate.main(["--model", str(path), "--data", str(data)])

    shutil.copyfile(os.path.join(tiny_bpe_dir, "tokenizer.json"), path / "tokenizer.json")  # 400 tokens
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "train_sft.py", "--model", str(path), "--out", str(tmp_path_factory.mktemp("o"))],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("train_sft.py: vocab mismatch: tokenizer") and "config.json says vocab_size=" in last
    )
