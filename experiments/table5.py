"""Paper Table 5 (the ablation) with seeds and error bars: on the demo's small random model, or on
SmolLM2-135M-Instruct (real pretrained weights).

    python experiments/table5.py --seeds 3                     # the demo model: ~70 min on 2 CPU cores
    python experiments/table5.py --model smol --seeds 3        # SmolLM2: hours (docs/MEASUREMENTS.md)
    python experiments/table5.py --quick [--model smol]        # 1 seed, a few steps on tiny models

Rows: SFT with none of the components, with MAE, with PKT, with MAE + PKT; PPO with the
error-category reward on SFT-none ("w/ IRM") and on SFT MAE + PKT ("w/ All"), and multi-turn PPO
(`train_ppo.py --multi_turn`) on SFT-none ("w/ IRM multi-turn"). Every run trains with the model's
presets of train_sft.py / train_ppo.py (`demo` or `smol`) on that preset's synthetic data, with its
own seed, and is evaluated greedily. Reported per run: TS / PI / CF (single turn) and DE / CE / VA
(multi-turn) on the synthetic held-out splits, and each component's diagnostic:
- MAE: % of single-turn predictions that repeat a mistake of a kind planted in the training data
  (`tasks.synth.planted_kind`);
- PKT: % of predictions naming a wrong tool, and the share of those whose name shares a prefix
  with the right one (paper Table 1);
- IRM: the mean reward R(t) of the held-out predictions, and CF and reward before PPO.
`--model smol` also scores BFCL-v3 simple, multiple and irrelevance (BFCL's accuracy) and RoTBench
First_Turn clean from `--benchmarks` (default ../shared/data).

Writes OUT/table5.md (mean ± sd per row; each row's difference from "none" with the standard error
of the per-seed differences), OUT/table5.json (`{"model", "seeds", "runs": [{"row", "seed", ...}]}`:
every run's numbers, written after each run) and, with matplotlib, OUT/table5.png. A killed table
resumes where it stopped: finished runs are read back, an unfinished one continues from its last
checkpoint (`--resume`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import evaluate  # noqa: E402
import train_ppo  # noqa: E402
import train_sft  # noqa: E402
from tasks.synth import DEMO_DATA, PRESET_DATA, SMOL_DATA, planted_kind, write_splits  # noqa: E402
from tl.calls import EOS_MARK, Call, render_prompt  # noqa: E402
from tl.classify import Classification, call_reward  # noqa: E402
from tl.parse import parse  # noqa: E402

SFT_ROWS = {"none": ["--no-mae", "--no-pkt"], "MAE": ["--no-pkt"], "PKT": ["--no-mae"], "MAE+PKT": []}
# row -> (the SFT row it starts from, extra flags). Multi-turn: batches of 16 tasks (episodes of up to
# 4 outputs in the sandbox), as many steps as the model's single-turn PPO (demo 40, smol its preset's).
PPO_ROWS = {
    "w/ IRM": ("none", []),
    "w/ All": ("MAE+PKT", []),
    "w/ IRM multi-turn": ("none", ["--multi_turn"]),
}
MULTI_TURN_STEPS = {"demo": ["--max_steps", "40"], "smol": []}
COLUMNS = ("TS", "PI", "CF", "DE", "CE", "VA", "planted", "wrong_tool", "prefix_share", "reward")
# --model smol: the real benchmark files too (BFCL's accuracy per category; RoTBench's TS / PI / CF)
BENCHMARK_COLUMNS = ("bfcl_simple", "bfcl_multiple", "bfcl_irrelevance", "rot_TS", "rot_PI", "rot_CF")
BFCL_CATEGORIES = ("simple", "multiple", "irrelevance")
# how each model's runs are evaluated: the smol rows as the demonstration (docs/MEASUREMENTS.md)
EVALUATION = {"demo": [], "smol": ["--dtype", "bfloat16", "--batch_size", "16"]}

QUICK_SFT = ["--max_steps", "3", "--save_every", "0"]
QUICK_DEMO_MODEL = ["--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--vocab_size", "400"]
QUICK_PPO = ["--max_steps", "1", "--batch_size", "2", "--micro_batch", "1", "--max_new_tokens", "8"]
QUICK_EVALUATION = ["--max_new_tokens", "8", "--max_turns", "2", "--limit", "4"]


def diagnostics(folder: Path, gold: dict) -> dict:
    """MAE, PKT and IRM diagnostics from an evaluation's single-turn items.jsonl."""
    items = [json.loads(line) for line in open(folder / "items.jsonl")]
    planted = rewards = 0
    for r in items:
        calls = parse(r["output"]).calls
        planted += bool(calls) and planted_kind(calls[0], gold[r["id"]]) is not None
        rewards += call_reward(Classification(r["category"], r["details"]))
    errors = json.loads((folder / "metrics.json").read_text())["errors"]
    return {
        "planted": 100 * planted / len(items),
        "wrong_tool": errors["categories"]["wrong_tool"]["percent"],
        "prefix_share": errors["wrong_tool"]["shares_prefix"],
        "reward": rewards / len(items),
    }


def evaluate_run(model: Path, data: Path, out: Path, gold: dict, settings: dict) -> dict:
    """The run's numbers: the synthetic held-out splits, the diagnostics, and (with
    settings["benchmarks"], a data root) BFCL's simple, multiple and irrelevance files, each
    scored alone, and RoTBench First_Turn clean."""
    flags = settings["evaluation"]
    summary = evaluate.main(["--model", str(model), "--data", str(data), "--out", str(out), *flags])
    numbers = {**summary["synthetic/single"], **summary["synthetic/multi"]}
    result = {k: numbers[k] for k in ("TS", "PI", "CF", "DE", "CE", "VA")}
    result |= diagnostics(out / "synthetic" / "single", gold)
    root = settings["benchmarks"]
    if root is not None:
        for category in BFCL_CATEGORIES:
            question_file = root / "BFCL_v3" / f"BFCL_v3_{category}.json"
            bfcl = [
                "--benchmark",
                "bfcl",
                "--data",
                str(question_file),
                "--out",
                str(out / f"bfcl_{category}"),
            ]
            [scores] = evaluate.main(["--model", str(model), *bfcl, *flags]).values()
            result[f"bfcl_{category}"] = scores["CF"]  # BFCL's accuracy
        clean = root / "RoTBench" / "First_Turn" / "clean.json"
        rotbench = ["--benchmark", "rotbench", "--data", str(clean), "--out", str(out / "rotbench")]
        [scores] = evaluate.main(["--model", str(model), *rotbench, *flags]).values()
        result |= {f"rot_{k}": scores[k] for k in ("TS", "PI", "CF")}
    return result


def run_job(task) -> dict:
    """Train one run (resuming from its last checkpoint; not at all if its export exists) and
    evaluate it; output to RUN/log.txt."""
    (kind, _row, _seed, run, flags), data, gold, settings, single_thread = task
    if single_thread:
        torch.set_num_threads(1)
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "log.txt", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        start = time.time()
        if not (run / "model" / "config.json").is_file():
            trainer = train_sft if kind == "sft" else train_ppo
            trainer.main([*flags, "--out", str(run), "--resume"])
        trained = time.time()
        numbers = evaluate_run(run / "model", data, run / "eval", gold, settings)
    return numbers | {"train_min": (trained - start) / 60, "eval_min": (time.time() - trained) / 60}


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0)


def table(runs: dict, seeds: list[int], columns=COLUMNS) -> str:
    """Markdown: mean ± sd per row and column; below each row but "none", its paired difference
    from "none" (mean of the per-seed differences ± their standard error)."""
    lines = ["| row | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row, per_seed in runs.items():
        stats = [mean_sd([per_seed[s][c] for s in seeds]) for c in columns]
        lines.append(f"| {row} | " + " | ".join(f"{m:.2f} ± {sd:.2f}" for m, sd in stats) + " |")
        if row != "none":
            diffs = [mean_sd([per_seed[s][c] - runs["none"][s][c] for s in seeds]) for c in columns]
            cells = [f"{m:+.2f} ± {sd / math.sqrt(len(seeds)):.2f}" for m, sd in diffs]
            lines.append(f"| Δ {row} − none | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(runs: dict, seeds: list[int], path: Path, metrics) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 3.2))
    for ax, metric in zip(axes, metrics):
        stats = [mean_sd([runs[row][s][metric] for s in seeds]) for row in runs]
        ax.bar(range(len(runs)), [m for m, _ in stats], yerr=[sd for _, sd in stats], capsize=3)
        ax.set_xticks(range(len(runs)), list(runs), rotation=60, fontsize=7)
        ax.set_title(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def tiny_pretrained_model(folder: Path, data: Path) -> Path:
    """--quick --model smol: a tiny random LLaMA in SmolLM2's layout (tied embeddings, a byte-level
    BPE tokenizer.json trained on the data) standing in for the real weights."""
    from tasks.trajectories import load_trajectories
    from tl.hf import save_hf
    from tl.model import ModelArgs, Transformer
    from tl.tokenizer import load_tokenizer, train_bpe_tokenizer

    if (folder / "config.json").is_file():
        return folder
    records, _ = load_trajectories(str(data / "train.jsonl"))
    texts = []
    for r in records:
        texts += render_prompt(r["tools"], r["messages"], add_generation_prompt=False).split(EOS_MARK)
    tok = load_tokenizer(train_bpe_tokenizer(texts, folder, vocab_size=600))
    args = ModelArgs(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
    )
    model = Transformer.from_config(args, seed=0)
    save_hf(model.state_dict(), args, folder, tokenizer=tok)
    return folder


def save_results(path: Path, model: str, seeds: list[int], done: dict) -> None:
    runs = [
        {"row": row, "seed": int(seed), **numbers}
        for row, per_seed in done.items()
        for seed, numbers in per_seed.items()
    ]
    path.write_text(json.dumps({"model": model, "seeds": seeds, "runs": runs}, indent=2) + "\n")


def load_results(path: Path) -> dict:
    """{row: {seed: numbers}} of a table5.json, or {}."""
    if not path.is_file():
        return {}
    done = {}
    for run in json.loads(path.read_text())["runs"]:
        numbers = {k: v for k, v in run.items() if k not in ("row", "seed")}
        done.setdefault(run["row"], {})[run["seed"]] = numbers
    return done


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", choices=("demo", "smol"), default="demo", help="the demo's random model or SmolLM2"
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", help="default: out/table5 (demo), out/table5_smol (smol)")
    p.add_argument("--benchmarks", default="../shared/data", help="--model smol: the benchmark data root")
    p.add_argument(
        "--jobs", type=int, default=None, help="runs side by side, one thread each (default: demo 2, smol 1)"
    )
    p.add_argument("--quick", action="store_true", help="1 seed, a few steps on tiny models: the wiring only")
    args = p.parse_args(argv)
    smol = args.model == "smol"
    out = Path(args.out or ("out/table5_smol" if smol else "out/table5"))
    jobs = args.jobs or (1 if smol else 2)  # SmolLM2's runs take ~8 GiB each: one at a time on 24 GiB
    t0 = time.time()
    seeds = [0] if args.quick else list(range(args.seeds))

    # The data: the model preset's synthetic data (a little of it with --quick).
    data = out / "data"
    if not (data / "train.jsonl").is_file():
        sizes = dict(PRESET_DATA[SMOL_DATA if smol else DEMO_DATA])
        if args.quick:
            sizes.update(n=40, heldout_single=6, heldout_multi=3)
        write_splits(str(data / "train.jsonl"), **sizes)
    gold = {}
    with open(data / "heldout_single.jsonl") as f:
        for line in f:
            item = json.loads(line)
            gold[item["id"]] = Call.from_dict(item["gold"])

    preset = ["--preset", args.model]
    sft_extra, ppo_extra = [], []
    if args.quick:
        sft_extra = QUICK_SFT + (
            ["--model", str(tiny_pretrained_model(out / "tiny_model", data))] if smol else QUICK_DEMO_MODEL
        )
        ppo_extra = QUICK_PPO
    benchmarks = None
    root = Path(args.benchmarks)
    if smol and (root / "BFCL_v3").is_dir() and (root / "RoTBench").is_dir():
        benchmarks = root
    elif smol and not args.quick:
        raise SystemExit(
            f"--benchmarks {root}: expected BFCL_v3/ and RoTBench/ there (../shared/data holds both)"
        )
    settings = {
        "evaluation": EVALUATION[args.model] + (QUICK_EVALUATION if args.quick else []),
        "benchmarks": benchmarks,
    }
    columns = COLUMNS + (BENCHMARK_COLUMNS if benchmarks else ())

    def sft_run(row, seed):
        return out / f"sft_{row.replace('+', '_')}_{seed}"

    sft_jobs = [
        (
            "sft",
            row,
            seed,
            sft_run(row, seed),
            [*preset, "--data", str(data / "train.jsonl"), "--seed", str(seed), *flags, *sft_extra],
        )
        for seed in seeds
        for row, flags in SFT_ROWS.items()
    ]
    # the demo's PPO prompts are its SFT data; smol's are its preset's own fresh file (docs/MEASUREMENTS.md)
    ppo_data = [] if smol and not args.quick else ["--data", str(data / "train.jsonl")]
    ppo_jobs = [
        (
            "ppo",
            row,
            seed,
            out / f"ppo_{row[3:].replace(' ', '_')}_{seed}",
            [
                *preset,
                "--sft",
                str(sft_run(base, seed) / "model"),
                *ppo_data,
                "--seed",
                str(seed),
                *flags,
                *(MULTI_TURN_STEPS[args.model] if "--multi_turn" in flags else []),
                *ppo_extra,
            ],
        )
        for seed in seeds
        for row, (base, flags) in PPO_ROWS.items()
    ]

    results_file = out / "table5.json"
    done = load_results(results_file)
    # Seed by seed (a table stopped early still has whole seeds), SFT before PPO (PPO starts from
    # the SFT exports).
    phases = [[job for job in phase if job[2] == seed] for seed in seeds for phase in (sft_jobs, ppo_jobs)]
    for phase in phases:
        todo = [(job, data, gold, settings, jobs > 1) for job in phase if job[2] not in done.get(job[1], {})]
        if jobs > 1:  # independent single-threaded runs side by side: ~2x one run on 2 threads
            with multiprocessing.get_context("spawn").Pool(jobs) as pool:
                finished = zip(todo, pool.imap(run_job, todo, chunksize=1))
                for (job, *_), numbers in finished:
                    record(done, job, numbers, results_file, args.model, seeds)
        else:
            for task in todo:
                record(done, task[0], run_job(task), results_file, args.model, seeds)

    runs = {row: {seed: done[row][seed] for seed in seeds} for row in [*SFT_ROWS, *PPO_ROWS]}
    text = table(runs, seeds, columns)
    minutes = (time.time() - t0) / 60
    (out / "table5.md").write_text(f"{text}\n\n{len(seeds)} seed(s), {minutes:.1f} min\n")
    metrics = ("TS", "CF", "CE", "VA", "planted", "wrong_tool", "reward") + (
        ("bfcl_simple", "bfcl_irrelevance", "rot_CF") if benchmarks else ()
    )
    drew = chart(runs, seeds, out / "table5.png", metrics)
    print(
        f"{text}\n\n{out / 'table5.md'}, {results_file}"
        + (f", {out / 'table5.png'}" if drew else "")
        + f" ({len(seeds)} seed(s), {minutes:.1f} min)"
    )
    return runs


def record(done: dict, job, numbers: dict, results_file: Path, model: str, seeds: list[int]) -> None:
    """Keep one finished run's numbers (with, for PPO, its SFT run's CF and reward) and save them."""
    _, row, seed, _, _ = job
    if row in PPO_ROWS:
        before = done[PPO_ROWS[row][0]][seed]
        numbers["CF_before"], numbers["reward_before"] = before["CF"], before["reward"]
    done.setdefault(row, {})[seed] = numbers
    save_results(results_file, model, seeds, done)  # after every run: a kill loses at most one


if __name__ == "__main__":
    main()
