"""ToolEyes (Ye et al., 2024): multi-turn tasks over 95 groups of real-world tools, and `Simulator`,
the offline stand-in for their live web APIs.

`Test_Data/scenario_data_<zero|five>_processed.json` is a JSON list of `{"id", "conversations":
[system, user], "path", "scenario"}`; the query is the user turn. A task's tools are
`<path>/config_gpt4.json` (OpenAI function dicts ending with ask_to_user and finish), `path` (e.g.
`ToolEyes/Tool_Library/Random/Random`) resolved against the data root; without that file, the JSON list
in the system prompt (identical in the released data).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from tasks.base import (
    BenchmarkError,
    Loaded,
    Task,
    read_json_list,
    record_ids,
    require,
    tool_list_from_prompt,
    tools_of,
)
from tl.calls import Call, normalize_tools
from tl.episode import Result, validate_call


def _config_file(root: Path, tool_path: str):
    """The task's `config_gpt4.json` under `root` (or its parent), else None."""
    parts = Path(tool_path).parts
    for base in (root, root.parent):
        for k in range(len(parts)):  # drop leading components ("ToolEyes/") until it resolves
            f = base.joinpath(*parts[k:], "config_gpt4.json")
            if f.exists():  # exists(), not is_file(): a directory there is reported, not passed over
                return f
    return None


def load_file(path, root=None) -> Loaded:
    """One `scenario_data_*_processed.json` -> Tasks (category = scenario); `root` holds Tool_Library/."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent.parent
    name = f"tooleyes/{path.stem.replace('scenario_data_', '').replace('_processed', '')}"
    records = read_json_list(path, "tasks")
    tasks = []
    config_tools = cache(lambda f: read_json_list(f, "tools"))  # tasks share their group's file
    for i, (rec, task_id) in enumerate(zip(records, record_ids(records, path))):
        where = f"{path}:{i}"
        conv = require(rec, "conversations", list, where)
        turns = {}  # speaker -> text
        for t in conv:
            if isinstance(t, dict) and isinstance(t.get("from"), str):
                turns[t["from"]] = t.get("value")
        if not isinstance(turns.get("user"), str):
            raise BenchmarkError(
                f"{where}: expected a user turn with a string value; found speakers {list(turns)}"
            )
        tool_path = rec.get("path")
        config = _config_file(root, tool_path) if isinstance(tool_path, str) else None
        # the tools come from the group's config file, else from the system prompt; `source` names it
        if config is not None:
            raw_tools = config_tools(config)
            source = str(config)
        elif isinstance(turns.get("system"), str):
            raw_tools = tool_list_from_prompt(turns["system"], where)
            source = where
        else:
            raise BenchmarkError(
                f"{where}: no tools: {tool_path!r} has no config_gpt4.json under {root} "
                "and there is no system prompt"
            )
        tasks.append(
            Task(
                task_id,
                name,
                tools_of(raw_tools, source),
                turns["user"].strip(),
                str(rec.get("scenario", "")),
                {"path": tool_path},
            )
        )
    return Loaded(name, tasks)


def find_files(path) -> list[Path]:
    """A ToolEyes task file, or the `scenario_data_*_processed.json` files under `Test_Data/`."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(
        (path / "Test_Data").glob("scenario_data_*_processed.json"), key=lambda p: ("five" in p.name, p.name)
    )


def load(path) -> list[Loaded]:
    """Every ToolEyes task file under `path` (the folder holding Test_Data/ and Tool_Library/)."""
    files = find_files(path)
    if not files:
        raise BenchmarkError(
            f"{path}: no ToolEyes files found (expected Test_Data/scenario_data_*_processed.json)"
        )
    root = Path(path) if Path(path).is_dir() else None  # None: next to the task file
    return [load_file(f, root) for f in files]


ASK_TO_USER = "ask_to_user"
# ask_to_user's output: nobody is there to ask
NO_USER_REPLY = "The user has no further information to add. Continue with what you have."


class Simulator:
    """`Simulator(tools).run(call) -> tl.episode.Result`, the executor interface of tl.episode.

    ToolEyes' tools call live web services that are out of reach offline and change over time, and
    DE/CE/VA only ask whether a *call* was right. So each call is validated against the task's schemas
    by the sandbox's own `validate_call` (stricter types than the original tools), and a valid call gets
    a deterministic made-up JSON output (the tool, the arguments, a hash of the call: no real data).
    Not simulated: failures and instability, semantic checks, outputs a next step depends on."""

    def __init__(self, tools):
        self.tools = {t["name"]: t for t in normalize_tools(tools)}

    def run(self, call) -> Result:
        call = Call.from_dict(call)
        failed = validate_call(call, self.tools)
        if failed is not None:
            return failed
        if call.name == ASK_TO_USER:
            return Result(True, NO_USER_REPLY)
        call_json = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(call_json.encode()).hexdigest()
        # the first line of the tool's description (at most 120 characters), else its name
        first_line = self.tools[call.name].get("description", "").strip().split("\n")[0]
        what = first_line[:120] or call.name
        output = {
            "status": "success",
            "tool": call.name,
            "arguments": call.arguments,
            "result": f"[simulated {digest[:12]}] {what}",
        }
        return Result(True, json.dumps(output, ensure_ascii=False))
