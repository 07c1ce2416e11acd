"""ToolAlpaca (Tang et al., 2023): `eval_real.json` and `eval_simulated.json`.

Each file is a JSON list of APIs: `{"Name", "Function_Description": {function: "<description>
\\nParameters: {...}\\nOutput: ..."}, "Instructions": [str], "Golden_Answers": [[{"Action",
"Action_Input": "<json>"}, ...]], ...}`. One item per instruction, id `<Name>/<i>`; the tools are
the API's functions (schemas from `tl.schema.normalize_tools`, which skips the `components`
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

from tl.benchmarks.base import BenchmarkError, Item, Loaded, Skipped, call_of, read_json_list, require, tools_of


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
        tools = tools_of(require(api, "Function_Description", dict, where), f"{where} ({api_name}): Function_Description")
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

