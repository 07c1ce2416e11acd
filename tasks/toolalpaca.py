"""ToolAlpaca (Tang et al., 2023): `eval_real.json` and `eval_simulated.json`.

A file is a JSON list of APIs: `{"Name", "Category", "Function_Description": {function: "<description>
\\nParameters: {...}\\nOutput: ..."}, "Instructions": [str], "Golden_Answers": [[{"Action",
"Action_Input": "<json>"}, ...]]}`. One item per instruction, id `<Name>/<i>`, the gold its first
step, scored with RoTBench's rules (paper Sec. 4.3). The released eval_real.json's flaws: gold that
names an undocumented function (6 AviationAPI items) is kept as shipped; gold whose Action_Input is
not JSON (4 CurrencyBeacon items) is `Skipped`: no prediction can match it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tasks.base import (
    BenchmarkError,
    Item,
    Loaded,
    Skipped,
    call_of,
    checked,
    read_json_list,
    require,
    tools_of,
)
from tl.calls import TYPE_WORDS, normalize_type

_PARAMS = re.compile(r"(?:^|\n)Parameters:\s*(\{.*?\})\s*(?:\nOutput:|$)", re.S)


def _property(text: str) -> tuple[dict, bool]:
    """`"Required. string. Two-character code."` -> ({"type": "string", "description": ...}, True)."""
    rest = text.strip()
    required = rest.lower().startswith("required.")
    if required:
        rest = rest[len("required.") :].strip()
    # a leading type word (`string.`, `Array[string].`); without one the whole text is the description
    m = re.match(r"([A-Za-z]+(?:\[[^\]]*\])?)\.\s*", rest)
    if m and (m.group(1).lower() in TYPE_WORDS or "[" in m.group(1)):
        return {"type": normalize_type(m.group(1)), "description": rest[m.end() :].strip()}, required
    return {"type": "string", "description": rest}, required


def function_tools(functions: dict) -> list[dict]:
    """`Function_Description` -> OpenAI-style tools (`components` documents output formats: skipped)."""
    tools = []
    for name, text in functions.items():
        if name == "components":
            continue
        m = _PARAMS.search(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(
                f"ToolAlpaca description of {name!r}: expected a 'Parameters: {{...}}' line; "
                f"found {text!r:.200}"
            )
        try:
            raw = json.loads(m.group(1))
        except (ValueError, RecursionError) as e:
            raise ValueError(
                f"ToolAlpaca description of {name!r}: the Parameters line is not JSON ({e})"
            ) from None
        properties = {}
        required = []
        for key, spec in raw.items():
            prop, is_required = _property(spec if isinstance(spec, str) else json.dumps(spec))
            properties[key] = prop
            if is_required:
                required.append(key)
        parameters = {"type": "object", "properties": properties, "required": required}
        tools.append({"name": name, "description": text[: m.start()].strip(), "parameters": parameters})
    return tools


def load_file(path) -> Loaded:
    """One ToolAlpaca evaluation file -> Items (mode "rotbench", category = the API's Category)."""
    path = Path(path)
    name = f"toolalpaca/{path.stem}"
    items = []
    skipped = []
    for a, api in enumerate(read_json_list(path, "APIs")):
        where = f"{path}:{a}"
        api_name = require(api, "Name", str, where)
        instructions = require(api, "Instructions", list, where)
        answers = require(api, "Golden_Answers", list, where)
        if len(answers) != len(instructions):
            raise BenchmarkError(
                f"{where} ({api_name}): {len(instructions)} Instructions but {len(answers)} Golden_Answers"
            )
        at = f"{where} ({api_name}): Function_Description"
        functions = require(api, "Function_Description", dict, where)
        tools = tools_of(checked(function_tools, functions, at), at)
        for i, (instruction, steps) in enumerate(zip(instructions, answers)):
            item_where = f"{where} ({api_name}) instruction {i}"
            if not isinstance(instruction, str) or not isinstance(steps, list):
                raise BenchmarkError(
                    f"{item_where}: expected an instruction string and a list of gold steps; "
                    f"found {type(instruction).__name__} and {type(steps).__name__}"
                )
            if not steps:
                skipped.append(Skipped(item_where, "Golden_Answers is empty"))
                continue
            first = steps[0]  # the gold is the first step
            if isinstance(first, dict):
                raw = {"name": first.get("Action"), "arguments": first.get("Action_Input")}
            else:
                raw = first
            try:
                gold = call_of(raw, "gold step 0 is not a readable call")
            except BenchmarkError as e:  # gold the benchmark ships broken (module docstring)
                skipped.append(Skipped(item_where, str(e)))
                continue
            items.append(
                Item(
                    f"{api_name}/{i}",
                    name,
                    tools,
                    [{"role": "user", "content": instruction}],
                    [gold],
                    "rotbench",
                    str(api.get("Category", "")),
                )
            )
    return Loaded(name, items, skipped)


def find_files(path) -> list[Path]:
    """A ToolAlpaca file, or `eval_real.json` / `eval_simulated.json` in a directory (or its `data/`)."""
    path = Path(path)
    if path.is_file():
        return [path]
    for folder in (path, path / "data"):
        # exists(), not is_file(): a directory there is reported, not passed over
        found = [folder / f for f in ("eval_real.json", "eval_simulated.json") if (folder / f).exists()]
        if found:
            return found
    return []


def load(path) -> list[Loaded]:
    """Every ToolAlpaca evaluation file under `path`, one unit per file."""
    files = find_files(path)
    if not files:
        raise BenchmarkError(
            f"{path}: no ToolAlpaca files found (expected eval_real.json or eval_simulated.json)"
        )
    return [load_file(f) for f in files]
