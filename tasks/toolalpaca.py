"""ToolAlpaca (Tang et al., 2023): `eval_real.json` and `eval_simulated.json`.

Each file is a JSON list of APIs: `{"Name", "Function_Description": {function: "<description>
\\nParameters: {...}\\nOutput: ..."}, "Instructions": [str], "Golden_Answers": [[{"Action",
"Action_Input": "<json>"}, ...]], ...}`. One item per instruction, id `<Name>/<i>`; the tools are
the API's functions (schemas from `tl.calls.normalize_tools`, which skips the `components`
entry); the gold is the first step of `Golden_Answers[i]`, scored with RoTBench's rules (the
paper, Sec. 4.3). Two flaws of the released `eval_real.json` are handled as follows:
- some gold steps name a function the API's `Function_Description` does not document (6
  AviationAPI items): the items are kept, as the benchmark ships them; only a model that guesses
  the undocumented name can get them right;
- some gold `Action_Input`s are not JSON (4 CurrencyBeacon items, `"symbols": "symbols": [...]`):
  those items are skipped and reported (`Skipped`), since no prediction can be compared with them.
"""

from __future__ import annotations

from pathlib import Path

import json
import re

from tasks.base import BenchmarkError, Item, Loaded, Skipped, call_of, read_json_list, require, tools_of
from tl.calls import TYPE_WORDS, normalize_type

_PARAMS = re.compile(r"(?:^|\n)Parameters:\s*(\{.*?\})\s*(?:\nOutput:|$)", re.S)


def _property(text: str) -> tuple[dict, bool]:
    """`"Required. string. Two-character code."` -> ({"type": "string", "description": ...}, True)."""
    rest = text.strip()
    required = rest.lower().startswith("required.")
    rest = rest[len("required."):].strip() if required else rest
    m = re.match(r"([A-Za-z]+(?:\[[^\]]*\])?)\.\s*", rest)
    if m and (m.group(1).lower() in TYPE_WORDS or "[" in m.group(1)):
        return {"type": normalize_type(m.group(1)), "description": rest[m.end():].strip()}, required
    return {"type": "string", "description": rest}, required


def function_tools(functions: dict) -> list[dict]:
    """ToolAlpaca's `Function_Description` {name: '<description>\\nParameters: {"key": "Required.
    string. <text>"}\\nOutput: ...'} -> OpenAI-style tools (its `components` entry documents output
    formats, not a tool, and is skipped)."""
    tools = []
    for name, text in functions.items():
        m = _PARAMS.search(text) if isinstance(text, str) and name != "components" else None
        if name == "components":
            continue
        if m is None:
            raise ValueError(f"ToolAlpaca description of {name!r}: expected a 'Parameters: {{...}}' line; found {text!r:.200}")
        try:
            raw = json.loads(m.group(1))
        except (ValueError, RecursionError) as e:
            raise ValueError(f"ToolAlpaca description of {name!r}: the Parameters line is not JSON ({e})") from None
        specs = {k: _property(v if isinstance(v, str) else json.dumps(v)) for k, v in raw.items()}
        tools.append({"name": name, "description": text[: m.start()].strip(), "parameters": {
            "type": "object", "properties": {k: p for k, (p, _) in specs.items()},
            "required": [k for k, (_, req) in specs.items() if req]}})
    return tools


def load_file(path, name: str | None = None) -> Loaded:
    """One ToolAlpaca evaluation file -> Items (mode "rotbench", category = the API's Category)."""
    path = Path(path)
    name = name or f"toolalpaca/{path.stem}"
    apis = read_json_list(path, "APIs")
    items, skipped = [], []
    for a, api in enumerate(apis):
        where = f"{path}:{a}"
        api_name = require(api, "Name", str, where)
        instructions = require(api, "Instructions", list, where)
        answers = require(api, "Golden_Answers", list, where)
        if len(answers) != len(instructions):
            raise BenchmarkError(f"{where} ({api_name}): {len(instructions)} Instructions but {len(answers)} Golden_Answers")
        at = f"{where} ({api_name}): Function_Description"
        try:
            raw_tools = function_tools(require(api, "Function_Description", dict, where))
        except BenchmarkError:
            raise
        except ValueError as e:
            raise BenchmarkError(f"{at}: {e}") from None
        tools = tools_of(raw_tools, at)
        for i, (instruction, steps) in enumerate(zip(instructions, answers)):
            item_where = f"{where} ({api_name}) instruction {i}"
            if not isinstance(instruction, str) or not isinstance(steps, list):
                raise BenchmarkError(f"{item_where}: expected an instruction string and a list of gold steps; "
                                     f"found {type(instruction).__name__} and {type(steps).__name__}")
            if not steps:
                skipped.append(Skipped(item_where, "Golden_Answers is empty"))
                continue
            step = steps[0]
            raw = {"name": step.get("Action"), "arguments": step.get("Action_Input")} if isinstance(step, dict) else step
            try:  # a gold step the benchmark ships broken is skipped (module docstring)
                gold = call_of(raw, "gold step 0 is not a readable call")
            except BenchmarkError as e:
                skipped.append(Skipped(item_where, str(e)))
                continue
            items.append(Item(f"{api_name}/{i}", name, tools, [{"role": "user", "content": instruction}],
                              [gold], "rotbench", str(api.get("Category", ""))))
    return Loaded(name, items, skipped)


def find_files(path) -> list[Path]:
    """A ToolAlpaca file, or `eval_real.json` / `eval_simulated.json` in a directory (or its `data/`)."""
    path = Path(path)
    if path.is_file():
        return [path]
    for folder in (path, path / "data"):  # exists(), not is_file(): a directory there is reported, not passed over
        found = [folder / f for f in ("eval_real.json", "eval_simulated.json") if (folder / f).exists()]
        if found:
            return found
    return []


def load(path) -> list[Loaded]:
    """Every ToolAlpaca evaluation file under `path`, one unit per file."""
    files = find_files(path)
    if not files:
        raise BenchmarkError(f"{path}: no ToolAlpaca files found (expected eval_real.json or eval_simulated.json)")
    return [load_file(f) for f in files]

