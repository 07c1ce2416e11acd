"""Benchmark loaders: each reads one benchmark's own files from a path the user gives.

    from tasks import load, discover
    units = load("rotbench", "../shared/data/RoTBench")   # [Loaded(name, items, skipped), ...]

`load(name, path)` returns evaluation units (one per benchmark file; BFCL's categories form one
unit); a unit holds `Item`s (single turn) or `Task`s (multi-turn). `discover(root)` finds every
benchmark under a data root. See tl/benchmarks/base.py for the types and the id rules.
"""

from __future__ import annotations

from pathlib import Path

from tasks import bfcl, rotbench, synthetic, toolalpaca, tooleyes
from tasks.base import BenchmarkError, Item, Loaded, Skipped, Task, unique_ids
from tl.calls import format_call

LOADERS = {"rotbench": rotbench, "bfcl": bfcl, "toolalpaca": toolalpaca, "tooleyes": tooleyes, "synthetic": synthetic}
# Folder names under a data root (../shared/data uses the first of each).
FOLDERS = {"rotbench": ("RoTBench",), "bfcl": ("BFCL_v3", "BFCL", "bfcl"), "toolalpaca": ("ToolAlpaca",),
           "tooleyes": ("ToolEyes",), "synthetic": (".",)}

__all__ = ["BenchmarkError", "Item", "Loaded", "Skipped", "Task", "LOADERS", "load", "discover", "gold_output", "unique_ids"]


def load(name: str, path=None) -> list[Loaded]:
    """The evaluation units of benchmark `name` read from `path` (a file or its data folder).
    BFCL without a path reads the installed bfcl-eval package."""
    if name not in LOADERS:
        raise BenchmarkError(f"unknown benchmark {name!r}; expected one of {', '.join(LOADERS)} (or 'all')")
    if path is None and name != "bfcl":
        raise BenchmarkError(f"benchmark {name!r} needs a data path (--data)")
    return LOADERS[name].load(path)


def _found(name: str, folder: Path) -> bool:
    if name == "synthetic":
        return (folder / synthetic.SINGLE).is_file() or (folder / synthetic.MULTI).is_file()
    return folder.is_dir() and bool(LOADERS[name].find_files(folder))


def discover(root) -> list[tuple[str, Path]]:
    """[(benchmark, folder)] for every benchmark whose files are under `root`, either in its usual
    folder (`RoTBench/`, `BFCL_v3/`, `ToolAlpaca/`, `ToolEyes/`, synthetic files at the top) or
    at `root` itself."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: not a directory (--benchmark all expects a data root)")
    found = []
    for name, folders in FOLDERS.items():
        for folder in [root / f for f in folders] + [root]:
            if _found(name, folder):
                found.append((name, folder))
                break
    return found


def _first(options):
    """The first acceptable BFCL value that is not "" (= may be omitted); "" when that is the only
    one (BFCL accepts the empty string for a required string key listed as [""])."""
    return next((v for v in options if v != ""), "")


def _keep(options, required: bool) -> bool:
    """Whether the gold output writes this key: when it may not be omitted ("" is not among its
    values, or the schema requires it). BFCL accepts no value at all for a key whose acceptable
    list is empty (live_simple_106, live_simple_112): it is left out."""
    return bool(options) and ("" not in options or required)


def _written(value, prop: dict):
    """An acceptable BFCL value as a model writes it. For a dict parameter (or a list of dicts)
    the acceptable value is a dict of acceptable-value lists, whose members are literal values,
    as in BFCL's dict_checker; keys that may be omitted are left out."""
    def one(d):
        return {k: _first(v) for k, v in d.items() if _keep(v, False)} if isinstance(d, dict) else d
    kind = prop.get("type")
    if kind in ("dict", "object"):
        return one(value)
    if kind in ("array", "tuple") and (prop.get("items") or {}).get("type") in ("dict", "object") and isinstance(value, list):
        return [one(d) for d in value]
    return value


def _python_call(name: str, args: dict) -> str:
    # BFCL's own output format: Python literals (True, None), which its decoder reads as such.
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def gold_output(item: Item) -> str:
    """The item's gold answer written as model output (the first acceptable answer, parameters
    that may be omitted left out, BFCL's in its own Python syntax): scoring it gives TS = PI = CF
    = 100, except where the benchmark's own checker accepts no output: RoTBench's calls without
    arguments (unless --rotbench_empty_input_ok), BFCL's live_simple_106/112, live_multiple_862/964."""
    if item.mode != "bfcl":  # RoTBench's evaluate.py credits no call without arguments: prefer one with
        return format_call(next((g for g in item.gold if g.arguments or item.reader != "rotbench"), item.gold[0]))
    if item.category == "live_relevance":
        return _python_call(item.tools[0]["name"], {})  # any call is right
    if not item.gold:
        return "None of the available functions can answer this request."
    calls = []
    for entry in item.gold:
        (name, params), = entry.items()
        schema = next((f["parameters"] for f in item.tools if f["name"] == name), {})
        props, required = schema.get("properties", {}), schema.get("required", [])
        calls.append(_python_call(name, {k: _written(_first(v), props.get(k, {})) for k, v in params.items()
                                         if _keep(v, k in required)}))
    return "[" + ", ".join(calls) + "]"
