"""RoTBench (Ye et al., 2024): `First_Turn/*.json` and `Third_Turn/*.json`, clean and noisy.

A file is a JSON list of `{"id", "conversations": [{"from", "value"}], "scenario"}`: the ReAct system
prompt (the tools are the JSON list in it), the user query, in Third_Turn two earlier steps (ReAct
calls and `function` feedback), and last a LIST of acceptable ReAct answers, the gold. The noisy
levels rename tools and keys, so the finish / ask_to_user roles are found by position too (`role_rules`).
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
    role, value = turn.get("from"), turn.get("value")
    if not isinstance(value, str):
        raise BenchmarkError(
            f"{where}: a history turn's 'value' should be a string, found {type(value).__name__}"
        )
    if role == "assistant":
        parsed = parse(value)  # a ReAct call becomes a tool_call; other text is kept as the model saw it
        return {
            "role": "assistant",
            **({"tool_call": parsed.calls[0].to_dict()} if parsed.kind == "calls" else {"content": value}),
        }
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
    return {
        "unchecked_tools": tuple(dict.fromkeys((ask, finish, "ask_to_user", "finish"))),
        "aliases": {"finish": finish},
    }


def read_output(text: str, empty_input_ok: bool = False) -> Parsed:
    """Model text as RoTBench's evaluate.py reads it. In ReAct text the name runs from 8 characters after
    the first "Action:" to "Action Input:", less one trailing newline (`Action:get_x` names "et_x"), and
    all from 14 characters after "Action Input:" must be one JSON object. Other text: tl.parse.parse. A
    call without arguments is unreadable, as in evaluate.py, unless `empty_input_ok` (a deliberate
    deviation: 9 of First_Turn/clean's gold answers take `{}`)."""
    text = text.split(EOS_MARK, 1)[0] if isinstance(text, str) else text
    react = lambda why: Parsed("error", error=why, format="react")  # noqa: E731
    if not isinstance(text, str) or "Action:" not in text:
        parsed = parse(text)
    elif len(text) > MAX_CHARS:
        return react(f"output longer than {MAX_CHARS} characters")
    elif (b := text.find("Action Input:")) < 0 or not (name := text[text.find("Action:") + 8 : b]):
        return react("RoTBench reads a tool name between 'Action: ' and 'Action Input:'")
    else:
        try:  # model text: RecursionError (deep nesting) and ValueError (a 5,000-digit integer) included
            args = json.loads(text[b + 14 :])
        except (ValueError, RecursionError) as e:
            return react(f"RoTBench reads the Action Input as one JSON object: {type(e).__name__}: {e}"[:300])
        if not isinstance(args, dict):
            return react(f"Action Input is a {type(args).__name__}, not an object")
        parsed = Parsed("calls", [Call(name[:-1] if name.endswith("\n") else name, args)], None, "react")
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
    items, skipped = [], []
    for i, (rec, item_id) in enumerate(zip(records, record_ids(records, path))):
        where = f"{path}:{i}"
        conv = require(rec, "conversations", list, where)
        if (bad := next((k for k, t in enumerate(conv) if not isinstance(t, dict)), None)) is not None:
            raise BenchmarkError(
                f"{where} turn {bad}: expected an object {{from, value}}, found {type(conv[bad]).__name__}"
            )
        if len(conv) < 3:
            raise BenchmarkError(
                f"{where}: 'conversations' needs system, user and gold turns; found {len(conv)} turns"
            )
        if [conv[0].get("from"), conv[1].get("from"), conv[-1].get("from")] != [
            "system",
            "user",
            "assistant",
        ]:
            raise BenchmarkError(
                f"{where}: expected turns system, user, ..., assistant; found {[t.get('from') for t in conv]}"
            )
        raw_tools = tool_list_from_prompt(require(conv[0], "value", str, where), where)
        tools = tools_of(raw_tools, f"{where}: the system prompt's tools")
        if len(tools) < 2:
            raise BenchmarkError(
                f"{where}: expected the API tools plus ask_to_user and finish; found {len(tools)} tools"
            )
        messages = [_history_message(t, f"{where} turn {k}") for k, t in enumerate(conv[1:-1], 1)]
        answers = conv[-1].get("value")
        answers = [answers] if isinstance(answers, str) else answers
        if not isinstance(answers, list) or not answers:
            raise BenchmarkError(
                f"{where}: the last assistant value should be a non-empty list of ReAct answers"
            )
        parsed = [parse(text) if isinstance(text, str) else None for text in answers]
        if (k := next((k for k, p in enumerate(parsed) if p is None or p.kind != "calls"), None)) is not None:
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
    return [
        f
        for turn in ("First_Turn", "Third_Turn")
        for f in sorted((path / turn).glob("*.json"), key=lambda p: (_LEVELS.get(p.stem, 9), p.stem))
    ]


def load(path) -> list[Loaded]:
    """Every RoTBench file under `path`, one unit per file."""
    if not (files := find_files(path)):
        raise BenchmarkError(
            f"{path}: no RoTBench files found (expected First_Turn/*.json or Third_Turn/*.json)"
        )
    return [load_file(f) for f in files]
