"""ToolEyes (Ye et al., 2024): multi-turn tasks over 95 groups of real-world tools.

`Test_Data/scenario_data_<zero|five>_processed.json` is a JSON list of `{"id", "conversations":
[system, user], "path", "scenario"}`. The tools of a task are read from
`<path>/config_gpt4.json` (a JSON list of OpenAI function dicts, ending with `ask_to_user` and
`finish`), where `path` looks like `ToolEyes/Tool_Library/Random/Random` and is resolved against
the data root the user gave (the folder holding `Tool_Library/`, or its parent); when that file is
absent, the JSON list inside the ReAct system prompt is used (the two are identical in the
released data). The query is the user turn. The live web APIs behind these tools are out of
reach offline, so tasks run against `tl.simulator` (see there).
"""

from __future__ import annotations

from pathlib import Path

from tl.benchmarks.base import BenchmarkError, Loaded, Task, read_json_list, record_ids, require, tool_list_from_prompt, tools_of


def _config_file(root: Path, tool_path: str):
    """`<tool_path>/config_gpt4.json` resolved against the data root, or None."""
    parts = Path(tool_path).parts
    for base in (root, root.parent):
        for k in range(len(parts)):  # drop leading components ("ToolEyes/") until it resolves
            f = base.joinpath(*parts[k:], "config_gpt4.json")
            if f.exists():  # not is_file(): a directory there is reported by read_json, not passed over
                return f
    return None


def load_file(path, root=None, name: str | None = None) -> Loaded:
    """One `scenario_data_*_processed.json` -> Tasks (category = scenario)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent.parent
    variant = path.stem.replace("scenario_data_", "").replace("_processed", "")
    name = name or f"tooleyes/{variant}"
    records = read_json_list(path, "tasks")
    ids = record_ids(records, path)
    configs = {}
    tasks = []
    for i, (rec, task_id) in enumerate(zip(records, ids)):
        where = f"{path}:{i}"
        conv = require(rec, "conversations", list, where)
        turns = {t["from"]: t.get("value") for t in conv if isinstance(t, dict) and isinstance(t.get("from"), str)}
        if not isinstance(turns.get("user"), str):
            raise BenchmarkError(f"{where}: expected a user turn with a string value; found speakers {list(turns)}")
        tool_path = rec.get("path")
        config = _config_file(root, tool_path) if isinstance(tool_path, str) else None
        if config is not None:
            if config not in configs:
                configs[config] = read_json_list(config, "tools")
            raw_tools, source = configs[config], str(config)
        elif isinstance(turns.get("system"), str):
            raw_tools, source = tool_list_from_prompt(turns["system"], where), where
        else:
            raise BenchmarkError(f"{where}: no tools: {tool_path!r} has no config_gpt4.json under {root} and there is no system prompt")
        tools = tools_of(raw_tools, source)
        tasks.append(Task(task_id, name, tools, turns["user"].strip(), str(rec.get("scenario", "")),
                          {"path": tool_path}))
    return Loaded(name, tasks)


def find_files(path) -> list[Path]:
    """A ToolEyes task file, or the `scenario_data_*_processed.json` files under `Test_Data/`."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted((path / "Test_Data").glob("scenario_data_*_processed.json"), key=lambda p: ("five" in p.name, p.name))


def load(path) -> list[Loaded]:
    """Every ToolEyes task file under `path` (the folder holding Test_Data/ and Tool_Library/)."""
    files = find_files(path)
    if not files:
        raise BenchmarkError(f"{path}: no ToolEyes files found (expected Test_Data/scenario_data_*_processed.json)")
    root = Path(path) if Path(path).is_dir() else None
    return [load_file(f, root) for f in files]
