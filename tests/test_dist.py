"""tl/dist.py in one process: checkpoints (atomic, keep-K, exact state), HF export and load.
The 2-rank FSDP2 paths (broadcast load, sharded checkpoints, gathered export) run in
tests/test_sft.py::test_torchrun_two_ranks_match_one_process."""

import json
import os

import pytest
import sft_tiny
import torch

from tl import checkpoint as C
from tl import dist as D
from tl import hf as H
from tl.model import ModelArgs
from tl.training import load_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ARGS = ModelArgs(
    vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
)


@pytest.fixture
def info():
    return D.init_distributed("cpu")


def _trained(info, steps=2, seed=0):
    model = load_model(ARGS, info, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.arange(40).reshape(2, 20) % ARGS.vocab_size
    for _ in range(steps):
        model(ids).float().logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer, ids


def test_checkpoint_round_trip_keep_k_and_tmp_ignored(tmp_path, info):
    model, optimizer, ids = _trained(info)
    ckpt = str(tmp_path / "checkpoints")
    for step in (1, 2, 3):
        C.save_checkpoint(ckpt, step, info, {"model": model}, {"model": optimizer}, {"note": step}, keep=2)
    assert sorted(os.listdir(ckpt)) == ["step_00000002", "step_00000003"]
    os.makedirs(os.path.join(ckpt, "step_00000009.tmp"))  # a save killed midway
    os.makedirs(os.path.join(ckpt, "step_00000010"))  # no meta.json: incomplete
    assert C.latest_checkpoint(ckpt) == os.path.join(ckpt, "step_00000003")

    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    C.save_checkpoint(ckpt, 4, info, {"model": model}, {"model": optimizer}, keep=2)
    assert not os.path.exists(os.path.join(ckpt, "step_00000009.tmp"))  # cleaned by the next save
    # A fresh model and optimizer restored from the checkpoint continue identically.
    fresh, fresh_opt, _ = _trained(info, steps=0, seed=7)
    meta = C.load_checkpoint(C.latest_checkpoint(ckpt), info, {"model": fresh}, {"model": fresh_opt})
    assert meta["step"] == 4 and meta["world_size"] == 1
    assert torch.equal(torch.rand(3), expected_draw)  # RNG state restored
    for m, o in ((model, optimizer), (fresh, fresh_opt)):
        m(ids).float().logsumexp(-1).mean().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


def test_other_world_size_warns_and_skips_rng(tmp_path, info):
    model, optimizer, _ = _trained(info, steps=1)
    path = C.save_checkpoint(str(tmp_path), 1, info, {"model": model}, {"model": optimizer})
    meta_file = os.path.join(path, "meta.json")
    json.dump({**json.load(open(meta_file)), "world_size": 2}, open(meta_file, "w"))
    fresh, fresh_opt, _ = _trained(info, steps=0, seed=5)
    with pytest.warns(UserWarning, match="written by 2 rank"):
        C.load_checkpoint(path, info, {"model": fresh}, {"model": fresh_opt})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="meta.json"):
        C.load_checkpoint(str(tmp_path), info, {"model": fresh}, {})


def test_export_hf_round_trip(tmp_path, info):
    tok = sft_tiny.tokenizer(tmp_path)
    model, _, ids = _trained(info)
    out = str(tmp_path / "model")
    H.export_hf(model, out, info, tokenizer=tok)
    H.export_hf(model, out, info, tokenizer=tok, dtype=torch.bfloat16)  # replaces the first export
    assert sorted(os.listdir(tmp_path)) == ["model", "tokenizer.model"]  # no .tmp / .old left
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer.model"]
    loaded = load_model(out, info, tokenizer=tok)  # loads as float32 training weights
    assert loaded.model.embed_tokens.weight.dtype == torch.float32
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.to(torch.bfloat16).float())


def test_torn_checkpoints_and_interrupted_resaves(tmp_path, info, monkeypatch):
    model, optimizer, _ = _trained(info, steps=1)
    ckpt = str(tmp_path)
    save = lambda step, **kw: C.save_checkpoint(
        ckpt, step, info, {"model": model}, {"model": optimizer}, **kw
    )  # noqa: E731
    save(1, keep=3)
    second = save(2, keep=3)
    shard = next(f for f in os.listdir(second) if f.endswith(".distcp"))
    with open(os.path.join(second, shard), "r+b") as f:  # a torn newest checkpoint: its shard cut short
        f.truncate(10)
    assert C.latest_checkpoint(ckpt) == os.path.join(ckpt, "step_00000001")  # resume falls back
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        C.load_checkpoint(second, info, {"model": model}, {})

    # Killed while re-saving step 2, after the old copy was set aside: that copy is the checkpoint.
    save(2, keep=3)
    real_rename = os.rename

    def killed_after_first(src, dst):
        if str(src).endswith("step_00000002.tmp"):
            raise KeyboardInterrupt  # stands in for SIGKILL between setting step 2 aside and renaming the new one in
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        save(2, keep=3)
    monkeypatch.setattr(os, "rename", real_rename)
    assert C.latest_checkpoint(ckpt) == os.path.join(ckpt, "step_00000002.old")
    C.load_checkpoint(C.latest_checkpoint(ckpt), info, {"model": model}, {"model": optimizer})
    save(3, keep=3)
    assert sorted(os.listdir(ckpt)) == ["step_00000001", "step_00000002.old", "step_00000003"]


def test_a_fresh_run_in_an_old_directory_keeps_its_own_checkpoints(tmp_path, info):
    model, optimizer, _ = _trained(info, steps=1)
    for step in (7, 8):  # an earlier, longer run
        C.save_checkpoint(str(tmp_path), step, info, {"model": model}, {"model": optimizer}, keep=2)
    for step in (1, 2):
        C.save_checkpoint(str(tmp_path), step, info, {"model": model}, {"model": optimizer}, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["step_00000001", "step_00000002"]
    assert C.latest_checkpoint(str(tmp_path)).endswith("step_00000002")


def test_a_rank_takes_its_own_gpu_or_says_there_is_none(monkeypatch):
    """Local rank k maps to cuda:k only when that many GPUs exist; --device cuda without CUDA and
    more local ranks than GPUs are each an error that says what to do (nothing is initialised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--device cuda: no CUDA device is available"):
        D.init_distributed("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(
        SystemExit, match=r"local rank 1 needs GPU cuda:1, but this machine has 1: .*--device cpu"
    ):
        D.init_distributed(None)


def test_a_checkpoint_that_cannot_fit_is_refused_with_its_size(tmp_path, info, monkeypatch):
    model, optimizer, _ = _trained(info, steps=1)
    state_bytes = sum(p.numel() * 4 for p in model.parameters()) * 3  # weights + AdamW's two moments
    usage = C.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(C.shutil, "disk_usage", lambda path: usage._replace(free=state_bytes - 1))
    with pytest.raises(SystemExit, match=r"not enough disk space .* needs 0\.\d+ GB, 0\.\d+ GB are free"):
        C.save_checkpoint(str(tmp_path), 1, info, {"model": model}, {"model": optimizer})
    assert C.latest_checkpoint(str(tmp_path)) is None
    monkeypatch.setattr(C.shutil, "disk_usage", lambda path: usage._replace(free=state_bytes + 10**6))
    path = C.save_checkpoint(str(tmp_path), 1, info, {"model": model}, {"model": optimizer})
    assert C.latest_checkpoint(str(tmp_path)) == path
