"""Benchmark loaders: each reads one benchmark's own files from a path the user gives.

    from tl.benchmarks import load, discover
    units = load("rotbench", "../shared/data/RoTBench")   # [Loaded(name, items, skipped), ...]

`load(name, path)` returns evaluation units (one per benchmark file; BFCL's categories form one
unit); a unit holds `Item`s (single turn) or `Task`s (multi-turn). `discover(root)` finds every
benchmark under a data root. See tl/benchmarks/base.py for the types and the id rules.
"""

from __future__ import annotations

from pathlib import Path

from tl.benchmarks import bfcl, rotbench, synthetic, toolalpaca, tooleyes
from tl.benchmarks.base import BenchmarkError, Item, Loaded, Skipped, Task, unique_ids
from tl.render import format_call
from tl.schema import Call

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


def _first_acceptable(options):
    """The first acceptable BFCL value that is not "" (= may be omitted)."""
    return _written(next(v for v in options if v != ""))


def _written(value):
    """An acceptable BFCL value as a model would write it: a dict's values are themselves lists
    of acceptable values (keys that may be omitted are left out), also inside lists of dicts."""
    if isinstance(value, dict):
        return {k: _first_acceptable(v) for k, v in value.items() if "" not in v}
    if isinstance(value, list):
        return [_written(v) for v in value]
    return value


def gold_output(item: Item) -> str:
    """The item's gold answer written as model output (the first acceptable answer, parameters
    that may be omitted left out): scoring it must give TS = PI = CF = 100."""
    if item.mode != "bfcl":
        return format_call(item.gold[0])
    if not item.gold:
        return "None of the available functions can answer this request."
    calls = []
    for entry in item.gold:
        (name, params), = entry.items()
        calls.append(Call(name, {k: _first_acceptable(v) for k, v in params.items() if "" not in v}))
    return format_call(calls)
