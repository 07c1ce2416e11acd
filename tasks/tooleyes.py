"""ToolEyes (Ye et al., 2024): multi-turn tasks over 95 groups of real-world tools.

`Test_Data/scenario_data_<zero|five>_processed.json` is a JSON list of `{"id", "conversations":
[system, user], "path", "scenario"}`. The tools of a task are read from
`<path>/config_gpt4.json` (a JSON list of OpenAI function dicts, ending with `ask_to_user` and
`finish`), where `path` looks like `ToolEyes/Tool_Library/Random/Random` and is resolved against
the data root the user gave (the folder holding `Tool_Library/`, or its parent); when that file is
absent, the JSON list inside the ReAct system prompt is used (the two are identical in the
released data). The query is the user turn. The live web APIs behind these tools are out of
reach offline, so tasks run against `tasks.tooleyes` (see there).
"""

from __future__ import annotations

import hashlib
import json

from pathlib import Path

from tl.calls import Call, normalize_tools
from tl.sandbox import Result, validate_call
from tasks.base import BenchmarkError, Loaded, Task, read_json_list, record_ids, require, tool_list_from_prompt, tools_of


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


# ----------------------------------------------------------------------------- the simulator
#
# The offline stand-in for ToolEyes' live web APIs: validate each call, fabricate an answer.
#
# ToolEyes' 95 tool groups call real web services (weather, finance, search, ...) that cannot be
# reached offline, and their answers change over time anyway. DE/CE/VA only need to know whether
# a *call* was right, so the simulator does exactly two things:
#
# 1. Validation against the task's tool schemas with the sandbox's own function
#    (`tl.sandbox.validate_call`), so the feedback is worded like Python's errors and classified
#    like every other feedback: unknown tool -> `NameError: name 'x' is not defined`
#    (tool_hallucination), extra key -> `... got an unexpected keyword argument 'x'`
#    (param_hallucination), missing required key -> `... missing 1 required positional argument`
#    (param_missing), wrong JSON type -> `... argument 'n' must be str, not int` (others, a CE).
#    The type check is stricter than the original Python tools, which mostly accept any value.
# 2. For a valid call, a deterministic made-up output: a JSON object naming the tool, echoing the
#    arguments and carrying a result string derived from a hash of the call, so the same call
#    always gets the same answer and different calls get different ones. It contains no real data:
#    a model cannot learn facts from it, only that its call went through. `ask_to_user` is
#    answered with a fixed reply that there is no further information (nobody is there to ask).
#
# What it does not simulate: tool failures and instability (real APIs time out, rate-limit and
# return errors), semantic checks (a valid call with a nonsense value succeeds), and outputs whose
# content the model's next step depends on.

ASK_TO_USER = "ask_to_user"
NO_USER_REPLY = "The user has no further information to add. Continue with what you have."


def fabricate_output(call: Call, tool: dict) -> str:
    """A deterministic, plausible-looking JSON output for a valid call (see the module docstring)."""
    key = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    what = tool.get("description", "").strip().split("\n")[0][:120] or call.name
    return json.dumps({"status": "success", "tool": call.name, "arguments": call.arguments,
                       "result": f"[simulated {digest[:12]}] {what}"}, ensure_ascii=False)


class Simulator:
    """`Simulator(tools).run(call) -> tl.sandbox.Result`, the executor interface of tl.episode."""

    def __init__(self, tools):
        self.tools = {t["name"]: t for t in normalize_tools(tools)}

    def run(self, call) -> Result:
        call = Call.from_dict(call)
        failed = validate_call(call, self.tools)
        if failed is not None:
            return failed
        if call.name == ASK_TO_USER:
            return Result(True, NO_USER_REPLY)
        return Result(True, fabricate_output(call, self.tools[call.name]))
