"""RoTBench (Ye et al., 2024): `First_Turn/*.json` and `Third_Turn/*.json`, clean and noisy.

A file is a JSON list of `{"id", "conversations": [{"from", "value"}], "scenario"}`: the ReAct system
prompt (the tools are the JSON list in it), the user query, in Third_Turn two earlier steps (ReAct
calls and `function` feedback), and last a LIST of acceptable ReAct answers, the gold. The noisy
levels rename tools and keys, so the finish / ask_to_user roles are found by position too
(`role_rules`).
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import (
    BenchmarkError,
    Item,
    Loaded,
    Skipped,
    read_json_list,
    record_ids,
    require,
    tool_list_from_prompt,
    tools_of,
)
from tl.calls import EOS_MARK, Call, normalize_tool
from tl.parse import MAX_CHARS, Parsed, parse

_LEVELS = {"clean": 0, "slight": 1, "medium": 2, "heavy": 3, "union": 4}


def _history_message(turn: dict, where: str) -> dict:
    """One earlier turn (between the user query and the gold) as a project message."""
    role = turn.get("from")
    value = turn.get("value")
    if not isinstance(value, str):
        raise BenchmarkError(
            f"{where}: a history turn's 'value' should be a string, found {type(value).__name__}"
        )
    if role == "assistant":
        parsed = parse(value)  # a ReAct call becomes a tool_call; other text is kept as the model saw it
        if parsed.kind == "calls":
            return {"role": "assistant", "tool_call": parsed.calls[0].to_dict()}
        return {"role": "assistant", "content": value}
    if role == "function":
        return {"role": "tool", "content": value}
    if role == "user":  # "\nBegin!" is ReAct scaffolding: the item is rendered in the model's own format
        return {"role": "user", "content": value.rstrip().removesuffix("\nBegin!").rstrip()}
    raise BenchmarkError(f"{where}: unexpected speaker {role!r} (expected user/assistant/function)")


def role_rules(raw_tools) -> dict:
    """RoTBench's evaluate.py leaves the arguments of ask_to_user and finish unchecked, finding them by
    position (`config[-2]`, `config[-1]`: noisy variants rename them) and by the gold call's literal
    names; a predicted literal "finish" counts as the finish-role tool. `raw_tools`: at least two, in
    any form tl.calls.normalize_tool reads."""
    ask, finish = (normalize_tool(t)["name"] for t in raw_tools[-2:])
    unchecked = dict.fromkeys((ask, finish, "ask_to_user", "finish"))  # without repeats, in order
    return {
        "unchecked_tools": tuple(unchecked),
        "aliases": {"finish": finish},
    }


def read_output(text: str, empty_input_ok: bool = False) -> Parsed:
    """Model text as RoTBench's evaluate.py reads it. In ReAct text the name runs from 8 characters after
    the first "Action:" to "Action Input:", less one trailing newline (`Action:get_x` names "et_x"), and
    all from 14 characters after "Action Input:" must be one JSON object. Other text: tl.parse.parse. A
    call without arguments is unreadable, as in evaluate.py, unless `empty_input_ok` (a deliberate
    deviation: 9 of First_Turn/clean's gold answers take `{}`)."""
    if isinstance(text, str):
        text = text.split(EOS_MARK, 1)[0]

    def react(why):
        return Parsed("error", error=why, format="react")

    if not isinstance(text, str) or "Action:" not in text:
        parsed = parse(text)
    elif len(text) > MAX_CHARS:
        return react(f"output longer than {MAX_CHARS} characters")
    else:
        # evaluate.py's fixed offsets: len("Action: ") == 8 and len("Action Input: ") == 14
        input_at = text.find("Action Input:")
        name = text[text.find("Action:") + 8 : input_at] if input_at >= 0 else ""
        if not name:
            return react("RoTBench reads a tool name between 'Action: ' and 'Action Input:'")
        try:  # model text: RecursionError (deep nesting) and ValueError (a 5,000-digit integer) included
            args = json.loads(text[input_at + 14 :])
        except (ValueError, RecursionError) as e:
            why = f"RoTBench reads the Action Input as one JSON object: {type(e).__name__}: {e}"
            return react(why[:300])
        if not isinstance(args, dict):
            return react(f"Action Input is a {type(args).__name__}, not an object")
        parsed = Parsed("calls", [Call(name.removesuffix("\n"), args)], None, "react")
    if parsed.kind == "calls" and not parsed.calls[0].arguments and not empty_input_ok:
        return Parsed(
            "error",
            error="RoTBench's evaluate.py counts a call without arguments as wrong",
            format=parsed.format,
        )
    return parsed


def load_file(path) -> Loaded:
    """One RoTBench JSON file -> Items (mode "rotbench", category = scenario)."""
    path = Path(path)
    benchmark = f"rotbench/{path.parent.name}/{path.stem}"
    records = read_json_list(path)
    items = []
    skipped = []
    for i, (rec, item_id) in enumerate(zip(records, record_ids(records, path))):
        where = f"{path}:{i}"
        conv = require(rec, "conversations", list, where)
        bad = next((k for k, t in enumerate(conv) if not isinstance(t, dict)), None)
        if bad is not None:
            raise BenchmarkError(
                f"{where} turn {bad}: expected an object {{from, value}}, found {type(conv[bad]).__name__}"
            )
        if len(conv) < 3:
            raise BenchmarkError(
                f"{where}: 'conversations' needs system, user and gold turns; found {len(conv)} turns"
            )
        speakers = [t.get("from") for t in conv]
        if [speakers[0], speakers[1], speakers[-1]] != ["system", "user", "assistant"]:
            raise BenchmarkError(f"{where}: expected turns system, user, ..., assistant; found {speakers}")
        raw_tools = tool_list_from_prompt(require(conv[0], "value", str, where), where)
        tools = tools_of(raw_tools, f"{where}: the system prompt's tools")
        if len(tools) < 2:
            raise BenchmarkError(
                f"{where}: expected the API tools plus ask_to_user and finish; found {len(tools)} tools"
            )
        messages = [_history_message(t, f"{where} turn {k}") for k, t in enumerate(conv[1:-1], 1)]
        answers = conv[-1].get("value")
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers:
            raise BenchmarkError(
                f"{where}: the last assistant value should be a non-empty list of ReAct answers"
            )
        parsed = [parse(text) if isinstance(text, str) else None for text in answers]
        k = next((k for k, p in enumerate(parsed) if p is None or p.kind != "calls"), None)
        if k is not None:  # gold the benchmark ships broken: skip the item, keep the file
            reason = parsed[k].error if parsed[k] is not None else f"not a string: {answers[k]!r:.80}"
            skipped.append(Skipped(where, f"gold answer {k} does not parse: {reason}"))
            continue
        items.append(
            Item(
                item_id,
                benchmark,
                tools,
                messages,
                [p.calls[0] for p in parsed],
                "rotbench",
                str(rec.get("scenario", "")),
                role_rules(raw_tools),
                reader="rotbench",
            )
        )
    return Loaded(benchmark, items, skipped)


def find_files(path) -> list[Path]:
    """A RoTBench file, or every `*.json` under `First_Turn/` then `Third_Turn/` (clean, slight,
    medium, heavy, union, then any other)."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = []
    for turn in ("First_Turn", "Third_Turn"):
        by_level = sorted((path / turn).glob("*.json"), key=lambda p: (_LEVELS.get(p.stem, 9), p.stem))
        files.extend(by_level)
    return files


def load(path) -> list[Loaded]:
    """Every RoTBench file under `path`, one unit per file."""
    files = find_files(path)
    if not files:
        raise BenchmarkError(
            f"{path}: no RoTBench files found (expected First_Turn/*.json or Third_Turn/*.json)"
        )
    return [load_file(f) for f in files]
