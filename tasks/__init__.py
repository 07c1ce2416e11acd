"""Benchmark loaders: each reads one benchmark's own files from a path the user gives.

    from tasks import load, discover
    units = load("rotbench", "../shared/data/RoTBench")   # [Loaded(name, items, skipped), ...]

`load(name, path)` returns the evaluation units (one per file; BFCL's categories form one), each of
`Item`s (single turn) or `Task`s (multi-turn); `discover(root)` finds every benchmark under a data root.
"""

from __future__ import annotations

from pathlib import Path

from tasks import bfcl, rotbench, synthetic, toolalpaca, tooleyes
from tasks.base import BenchmarkError, Item, Loaded, Skipped, Task, unique_ids
from tl.calls import format_call

LOADERS = {
    "rotbench": rotbench,
    "bfcl": bfcl,
    "toolalpaca": toolalpaca,
    "tooleyes": tooleyes,
    "synthetic": synthetic,
}
# Folder names under a data root (../shared/data uses the first of each); the root itself is tried last.
FOLDERS = {
    "rotbench": ("RoTBench",),
    "bfcl": ("BFCL_v3", "BFCL", "bfcl"),
    "toolalpaca": ("ToolAlpaca",),
    "tooleyes": ("ToolEyes",),
    "synthetic": (".",),
}

__all__ = [
    "BenchmarkError",
    "Item",
    "Loaded",
    "Skipped",
    "Task",
    "LOADERS",
    "load",
    "discover",
    "gold_output",
    "unique_ids",
]


def load(name: str, path=None) -> list[Loaded]:
    """The units of benchmark `name` read from `path` (a file or its folder); BFCL's default path:
    bfcl-eval's data."""
    if name not in LOADERS:
        raise BenchmarkError(f"unknown benchmark {name!r}; expected one of {', '.join(LOADERS)} (or 'all')")
    if path is None and name != "bfcl":
        raise BenchmarkError(f"benchmark {name!r} needs a data path (--data)")
    return LOADERS[name].load(path)


def _found(name: str, folder: Path) -> bool:
    if name == "synthetic":
        return any((folder / f).is_file() for f in (synthetic.SINGLE, synthetic.MULTI))
    return folder.is_dir() and bool(LOADERS[name].find_files(folder))


def discover(root) -> list[tuple[str, Path]]:
    """[(benchmark, folder)] for every benchmark whose files are under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: not a directory (--benchmark all expects a data root)")
    found = []
    for name, folders in FOLDERS.items():
        candidates = [root / f for f in folders] + [root]  # the root itself last
        folder = next((f for f in candidates if _found(name, f)), None)
        if folder is not None:
            found.append((name, folder))
    return found


def gold_output(item: Item) -> str:
    """The item's first acceptable answer as model output (BFCL's in its own syntax): it scores TS = PI =
    CF = 100, except where the benchmark's own checker accepts no output: RoTBench's calls without
    arguments (unless --rotbench_empty_input_ok), BFCL's live_simple_106/112, live_multiple_862/964."""
    if item.mode == "bfcl":
        return bfcl.gold_output(item)
    # RoTBench's evaluate.py credits no call without arguments: prefer a gold call with some
    credited = (g for g in item.gold if g.arguments or item.reader != "rotbench")
    return format_call(next(credited, item.gold[0]))
