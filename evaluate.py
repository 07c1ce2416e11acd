"""Evaluate a model, or a file of predictions, on tool-use benchmarks (paper Sec. 4.3).

    python evaluate.py                                    # the demo: out/ppo/model (else out/sft/model)
                                                          # on out/data's synthetic held-out split
    python evaluate.py --model DIR --benchmark rotbench --data ../shared/data/RoTBench
    python evaluate.py --model DIR --benchmark all --data ../shared/data
    python evaluate.py --benchmark bfcl --data ../shared/data/BFCL_v3 --predictions preds.jsonl
    python evaluate.py --benchmark toolalpaca --data ../shared/data/ToolAlpaca --predictions gold

Single-turn benchmarks (rotbench, bfcl, toolalpaca, the synthetic single-turn split) report TS /
PI / CF; multi-turn ones (tooleyes, the synthetic multi-turn split) DE / CE / VA. Predictions
are JSONL lines `{"id": <item id>, "output": <raw model text>}` (add `"benchmark": <unit>` when
one file serves several units); the output may be in any format tl.parse reads (BFCL: its own
Python call list, as BFCL's decoder reads it). `--predictions
gold` scores each item's own gold answer (a self-check: 100 / 100 / 100 wherever the benchmark's
own checker can credit an answer at all; see tasks.gold_output). Outputs are read and
scored as each benchmark's own checker does; --bfcl_json_literals and --rotbench_empty_input_ok
are the two documented deviations. Results go to `--out`:
`metrics.json`, `items.jsonl` (one record per item with the category of its prediction) and
`predictions.jsonl`, in a subfolder per unit when there are several (plus `summary.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from tasks import LOADERS, BenchmarkError, Item, discover, gold_output, load
from tasks.base import read_jsonl_lines
from tasks.run import complete, episode_record, predict, score, task_executors
from tl.calls import PROMPT_FORMATS
from tl.episode import run_episodes
from tl.errors import InputError
from tl.metrics import multi_turn_metrics
from tl.tokenizer import load_tokenizer

DEMO_MODELS = ("out/ppo/model", "out/sft/model")
DEMO_DATA = "out/data"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        help="HF LLaMA directory with tokenizer.model or tokenizer.json "
        "(default for the demo: out/ppo/model, else out/sft/model)",
    )
    p.add_argument("--benchmark", choices=[*LOADERS, "all"], help="default: synthetic")
    p.add_argument(
        "--data", help="the benchmark's file or folder; a data root for --benchmark all (default: out/data)"
    )
    p.add_argument(
        "--predictions",
        help="score this predictions JSONL (or a folder of <unit>/predictions.jsonl, or 'gold') instead of generating",
    )
    p.add_argument("--out", default="out/eval", help="output folder")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_new_tokens", type=int, default=256)
    p.add_argument("--max_turns", type=int, default=9, help="multi-turn limit (the paper: 9)")
    p.add_argument("--limit", type=int, help="evaluate only the first N items/tasks of each unit")
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default="auto",
        help="weights dtype (auto: as stored)",
    )
    p.add_argument(
        "--prompt_format",
        choices=PROMPT_FORMATS,
        default="project",
        help="authors: the template of the authors' finetune.py (no </s> after history turns, raw "
        "tool descriptions), for checkpoints their code trained, e.g. TL-CodeLLaMA-2",
    )
    p.add_argument(
        "--bfcl_json_literals",
        action="store_true",
        help="BFCL: read true/false/null in calls as JSON literals (the project's own call format, which "
        "models trained here write) instead of as the strings BFCL's decoder makes of them",
    )
    p.add_argument(
        "--rotbench_empty_input_ok",
        action="store_true",
        help="RoTBench: score a call without arguments like any other (its evaluate.py counts it wrong, "
        "so e.g. 8 of First_Turn/clean's 105 items cannot be right)",
    )
    return p.parse_args(argv)


def demo_model() -> str:
    for path in DEMO_MODELS:
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
    sys.exit(
        f"evaluate.py: no trained model found at {' or '.join(DEMO_MODELS)}; "
        "run `torchrun --standalone --nproc_per_node=2 train_sft.py` first (or pass --model / --predictions)"
    )


def load_units(args) -> list:
    """Every evaluation unit the arguments name (see tasks.load / discover)."""
    if args.benchmark == "all":
        found = discover(args.data)
        if not found:
            raise BenchmarkError(
                f"{args.data}: no benchmark files found (expected RoTBench/, BFCL_v3/, ToolAlpaca/, "
                "ToolEyes/ or held-out files)"
            )
        units = [u for name, folder in found for u in load(name, folder)]
    else:
        units = load(args.benchmark, args.data)
    return [replace(u, items=u.items[: args.limit]) if args.limit else u for u in units]


def read_predictions(path, units) -> dict:
    """{unit name: {id: output}} from a predictions file or folder (see the module docstring)."""
    single = [u for u in units if u.items and isinstance(u.items[0], Item)]
    if path == "gold":
        return {u.name: {it.id: gold_output(it) for it in u.items} for u in single}
    path = Path(path)
    files = {u.name: path / u.name / "predictions.jsonl" for u in single} if path.is_dir() else {None: path}
    if path.is_dir() and len(single) == 1 and (path / "predictions.jsonl").is_file():
        files = {single[0].name: path / "predictions.jsonl"}
    out = {u.name: {} for u in single}
    for unit, f in files.items():
        if path.is_dir() and not f.exists():
            raise BenchmarkError(
                f"{f}: predictions file not found (--predictions {path} is a folder: expected "
                f"<unit>/predictions.jsonl in it, or predictions.jsonl for one unit)"
            )
        for where, rec in read_jsonl_lines(f):
            item_id, output = (rec.get("id"), rec.get("output")) if isinstance(rec, dict) else (None, None)
            if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or output is None:
                raise BenchmarkError(
                    f'{where}: expected {{"id": <item id: string or integer>, "output": <model text>}}; '
                    f"found {rec!r:.100}"
                )
            name = unit or rec.get("benchmark") or (single[0].name if len(single) == 1 else None)
            if not isinstance(name, str) or name not in out:
                raise BenchmarkError(
                    f"{where}: cannot tell which benchmark {item_id!r} belongs to "
                    f'(add "benchmark": one of {sorted(out)}; found {name!r:.60})'
                )
            out[name][str(item_id)] = output if isinstance(output, str) else json.dumps(output)
    return out


def load_model(args):
    import torch

    from tl.hf import load_hf

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    tok = load_tokenizer(args.model)
    return load_hf(args.model, dtype=dtype, device=device, tokenizer=tok), tok


def evaluate_tasks(unit, model, tok, args):
    executor_for, close = task_executors(unit.name)
    bar = tqdm(total=len(unit.items), desc=unit.name, unit="task")
    try:
        episodes = run_episodes(
            lambda prompts: complete(
                model, tok, prompts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
            ),
            unit.items,
            executor_for,
            max_turns=args.max_turns,
            progress=bar.update,
            prompt_format=args.prompt_format,
        )
    finally:
        bar.close()
        close()
    records = [episode_record(t, e) for t, e in zip(unit.items, episodes)]
    return multi_turn_metrics(records), records


def write_unit(folder: Path, metrics: dict, records: list, predictions: dict | None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    internal = {"calls"} if "TS" in metrics else set()  # single turn: the classifications are in details
    with open(folder / "items.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({k: v for k, v in r.items() if k not in internal}, ensure_ascii=False) + "\n")
    if predictions is not None:
        with open(folder / "predictions.jsonl", "w", encoding="utf-8") as f:
            for item_id, output in predictions.items():
                f.write(json.dumps({"id": item_id, "output": output}, ensure_ascii=False) + "\n")


def markdown(name: str, metrics: dict) -> str:
    cols = ["DE", "CE", "VA"] if "DE" in metrics else ["TS", "PI", "CF"]
    rows = [f"| {name} | {metrics['n']} | " + " | ".join(f"{metrics[c]:.2f}" for c in cols) + " |"]
    rows += [
        f"| {name} / {g} | {m['n']} | " + " | ".join(f"{m[c]:.2f}" for c in cols) + " |"
        for g, m in metrics["by_category"].items()
        if len(metrics["by_category"]) > 1
    ]
    text = "\n".join([f"| benchmark | n | {' | '.join(cols)} |", "|---|---|" + "---|" * len(cols), *rows])
    if name == "bfcl":
        text += (
            "\n\nBFCL scores each category on its own (CF = BFCL's accuracy); the first row pools all items."
        )
    if "errors" in metrics:
        e = metrics["errors"]
        cats, params, wrong = e["categories"], e["parameters"], e["wrong_tool"]
        text += (
            f"\n\nError analysis ({e['n_calls']} calls, % of calls): wrong tool {cats['wrong_tool']['percent']:.2f} "
            f"(first token differs {wrong['first_token_differs']:.2f}%, shares a prefix {wrong['shares_prefix']:.2f}% "
            f"of them), tool hallucination {cats['tool_hallucination']['percent']:.2f}, parameter redundancy "
            f"{params['redundant']['percent']:.2f} / missing {params['missing']['percent']:.2f} / hallucination "
            f"{params['hallucinated']['percent']:.2f}, content {e['content']['percent']:.2f}, unparsable "
            f"{cats['unparsable']['percent']:.2f}, no call {cats['no_call']['percent']:.2f}"
        )
    return text


def main(argv=None):
    """The command line. A bad input file (a benchmark file, the predictions, the model or its
    tokenizer) ends the run with one line `evaluate.py: <file>...: <reason>`, exit status 1."""
    args = parse_args(argv)
    try:
        return run(args)
    except (BenchmarkError, InputError, FileNotFoundError) as e:
        sys.exit(f"evaluate.py: {e}")


def run(args) -> dict:
    """Evaluate as `args` say (see the module docstring) -> {unit: its headline metrics}."""
    if args.benchmark is None:
        args.benchmark = "synthetic"
    if args.data is None and args.benchmark != "bfcl":
        args.data = DEMO_DATA
    if args.model is None and args.predictions is None:
        args.model = demo_model()
    units = load_units(args)
    predictions = read_predictions(args.predictions, units) if args.predictions else None
    is_multi = {u.name: bool(u.items) and not isinstance(u.items[0], Item) for u in units}
    model = tok = None
    if args.model is not None and (predictions is None or any(is_multi.values())):
        model, tok = load_model(args)
    if args.model is not None and tok is None:  # scoring only: the tokenizer still serves Table 1
        tok = load_tokenizer(args.model)
    tokenize = (
        (lambda name: tok.encode(name)) if tok is not None else None
    )  # wrong-tool name tokens (Table 1)
    summary, out = {}, Path(args.out)
    for unit in units:
        for s in unit.skipped:
            print(f"skipped {s.where}: {s.reason}", file=sys.stderr)
        multi_turn = is_multi[unit.name]
        if multi_turn and model is None:
            print(f"{unit.name}: multi-turn tasks need --model (a policy to run); skipped", file=sys.stderr)
            continue
        if multi_turn:
            metrics, records = evaluate_tasks(unit, model, tok, args)
            outputs = None
        else:
            if predictions is not None:
                outputs = predictions[unit.name]
                unknown = set(outputs) - {it.id for it in unit.items}
                if unknown and not args.limit:
                    print(
                        f"{unit.name}: {len(unknown)} predictions match no item (e.g. {min(unknown)!r}); ignored",
                        file=sys.stderr,
                    )
            else:
                with tqdm(total=len(unit.items), desc=unit.name, unit="item") as bar:
                    outputs = predict(
                        model,
                        tok,
                        unit.items,
                        prompt_format=args.prompt_format,
                        batch_size=args.batch_size,
                        max_new_tokens=args.max_new_tokens,
                        progress=bar.update,
                    )
            try:
                metrics, records = score(
                    unit.items,
                    outputs,
                    tokenize,
                    bfcl_json_literals=args.bfcl_json_literals,
                    rotbench_empty_input_ok=args.rotbench_empty_input_ok,
                )
            except BenchmarkError as e:  # e.g. an item without a prediction: say which unit
                raise BenchmarkError(f"{unit.name}: {e}") from None
            outputs = {it.id: outputs[it.id] for it in unit.items}
        metrics["skipped"] = [f"{s.where}: {s.reason}" for s in unit.skipped]
        write_unit(out / unit.name if len(units) > 1 else out, metrics, records, outputs)
        summary[unit.name] = {
            k: metrics[k] for k in ("n", "TS", "PI", "CF", "DE", "CE", "VA") if k in metrics
        }
        print(markdown(unit.name, metrics) + "\n")
    if len(units) > 1:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


if __name__ == "__main__":
    main()
