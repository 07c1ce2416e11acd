"""RoTBench (Ye et al., 2024): `First_Turn/*.json` and `Third_Turn/*.json`, clean and noisy.

A file is a JSON list of `{"id", "conversations": [{"from", "value"}], "scenario"}`:
- `conversations[0]` is the ReAct system prompt; the tools are the JSON list inside it;
- then the user query (ending in "\\nBegin!\\n", ReAct scaffolding that is dropped here because
  the item is rendered in the model's own format);
- in Third_Turn files, two earlier steps: assistant ReAct calls and `function` feedback
  (including error feedback), which become `tool_call` / `tool` messages;
- the last assistant `value` is a LIST of acceptable ReAct answers, the gold.

The noisy levels (slight, medium, heavy, union) share the format; they rename tools and keys, so
the `finish` / `ask_to_user` roles are found by position (the last two tools) as well as by
name, as RoTBench's own evaluator does (`role_rules`; tl.classify's "rotbench" mode holds the
value rules, `read_output` how evaluate.py reads an answer).
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import (BenchmarkError, Item, Loaded, Skipped, read_json_list, record_ids, require,
                                tool_list_from_prompt, tools_of)
from tl.parse import MAX_CHARS, Parsed, parse
from tl.calls import EOS_MARK, Call, normalize_tool

_BEGIN = "\nBegin!"


def _user_text(value: str) -> str:
    text = value.rstrip()
    return text[: -len(_BEGIN)].rstrip() if text.endswith(_BEGIN) else text


def _history_message(turn: dict, where: str) -> dict:
    """A Third_Turn history step -> a trajectory message."""
    role, value = turn.get("from"), turn.get("value")
    if not isinstance(value, str):
        raise BenchmarkError(f"{where}: a history turn's 'value' should be a string, found {type(value).__name__}")
    if role == "function":
        return {"role": "tool", "content": value}
    if role == "user":
        return {"role": "user", "content": _user_text(value)}
    if role == "assistant":
        parsed = parse(value)
        if parsed.kind == "calls":
            return {"role": "assistant", "tool_call": parsed.calls[0].to_dict()}
        return {"role": "assistant", "content": value}  # kept as the model saw it
    raise BenchmarkError(f"{where}: unexpected speaker {role!r} (expected user/assistant/function)")


def role_rules(raw_tools) -> dict:
    """RoTBench's evaluate.py leaves the argument values of the ask_to_user and finish roles
    unchecked. It finds them by position (`config[-2]`, `config[-1]`: the noisy variants rename
    them) and by the literal names "ask_to_user" / "finish" of the gold call (which a noisy
    variant may give to another API); a predicted literal "finish" counts as the finish-role tool.
    `raw_tools`: the prompt's tool list, in any form tl.calls.normalize_tool reads (OpenAI's
    `{"type": "function", "function": {...}}` too); at least two tools."""
    ask, finish = (normalize_tool(t)["name"] for t in raw_tools[-2:])
    return {"unchecked_tools": tuple(dict.fromkeys((ask, finish, "ask_to_user", "finish"))), "aliases": {"finish": finish}}


def read_output(text: str, empty_input_ok: bool = False) -> Parsed:
    """Model text as RoTBench's evaluate.py reads it. ReAct text (holding "Action:"): the tool name
    is the text from 8 characters after the first "Action:" to the first "Action Input:", less
    one trailing newline, and the input is everything 14 characters after "Action Input:", which
    must be one JSON object: trailing text, a second Action block, a JSON string or a Python dict
    make the answer unreadable, and spacing counts (`Action:get_x` names "et_x"). Other text (the
    project's own call formats, which evaluate.py cannot read) goes through tl.parse.parse. A call
    without arguments counts as unreadable, as in evaluate.py (`if not test_action_input`), unless
    `empty_input_ok` (a deliberate deviation: evaluate.py gives no credit to a gold answer whose
    input is `{}`, 9 of First_Turn/clean's)."""
    text = text.split(EOS_MARK, 1)[0] if isinstance(text, str) else text
    if not isinstance(text, str) or "Action:" not in text:
        parsed = parse(text)
    elif len(text) > MAX_CHARS:
        return Parsed("error", error=f"output longer than {MAX_CHARS} characters", format="react")
    elif (b := text.find("Action Input:")) < 0 or not (name := text[text.find("Action:") + 8:b]):
        return Parsed("error", error="RoTBench reads a tool name between 'Action: ' and 'Action Input:'", format="react")
    else:
        try:  # model text: RecursionError (deep nesting) and ValueError (a 5,000-digit integer) included
            args = json.loads(text[b + 14:])
        except (ValueError, RecursionError) as e:
            return Parsed("error", error=f"RoTBench reads the Action Input as one JSON object: {type(e).__name__}: {e}"[:300],
                          format="react")
        if not isinstance(args, dict):
            return Parsed("error", error=f"Action Input is a {type(args).__name__}, not an object", format="react")
        parsed = Parsed("calls", [Call(name[:-1] if name.endswith("\n") else name, args)], None, "react")
    if parsed.kind == "calls" and not parsed.calls[0].arguments and not empty_input_ok:
        return Parsed("error", error="RoTBench's evaluate.py counts a call without arguments as wrong", format=parsed.format)
    return parsed


def load_file(path, benchmark: str | None = None) -> Loaded:
    """One RoTBench JSON file -> Items (mode "rotbench", category = scenario)."""
    path = Path(path)
    benchmark = benchmark or f"rotbench/{path.parent.name}/{path.stem}"
    records = read_json_list(path)
    ids = record_ids(records, path)
    items, skipped = [], []
    for i, (rec, item_id) in enumerate(zip(records, ids)):
        where = f"{path}:{i}"
        conv = require(rec, "conversations", list, where)
        bad = next((k for k, t in enumerate(conv) if not isinstance(t, dict)), None)
        if bad is not None:
            raise BenchmarkError(f"{where} turn {bad}: expected an object {{from, value}}, found {type(conv[bad]).__name__}")
        if len(conv) < 3:
            raise BenchmarkError(f"{where}: 'conversations' needs system, user and gold turns; found {len(conv)} turns")
        if conv[0].get("from") != "system" or conv[1].get("from") != "user" or conv[-1].get("from") != "assistant":
            roles = [t.get("from") for t in conv]
            raise BenchmarkError(f"{where}: expected turns system, user, ..., assistant; found {roles}")
        raw_tools = tool_list_from_prompt(require(conv[0], "value", str, where), where)
        tools = tools_of(raw_tools, f"{where}: the system prompt's tools")
        if len(tools) < 2:
            raise BenchmarkError(f"{where}: expected the API tools plus ask_to_user and finish; found {len(tools)} tools")
        messages = [_history_message(t, f"{where} turn {k}") for k, t in enumerate(conv[1:-1], 1)]
        answers = conv[-1].get("value")
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers:
            raise BenchmarkError(f"{where}: the last assistant value should be a non-empty list of ReAct answers")
        gold = []
        for k, text in enumerate(answers):
            parsed = parse(text) if isinstance(text, str) else None
            if parsed is None or parsed.kind != "calls":
                reason = parsed.error if parsed is not None else f"not a string: {text!r:.80}"
                skipped.append(Skipped(where, f"gold answer {k} does not parse: {reason}"))
                break
            gold.append(parsed.calls[0])
        else:
            items.append(Item(item_id, benchmark, tools, messages, gold, "rotbench", str(rec.get("scenario", "")),
                              role_rules(raw_tools), reader="rotbench"))
    return Loaded(benchmark, items, skipped)


def find_files(path) -> list[Path]:
    """A RoTBench file, or every `*.json` under `First_Turn/` and `Third_Turn/` of a directory
    (clean first, then slight, medium, heavy, union, then any other file)."""
    path = Path(path)
    if path.is_file():
        return [path]
    order = {"clean": 0, "slight": 1, "medium": 2, "heavy": 3, "union": 4}
    found = []
    for turn in ("First_Turn", "Third_Turn"):
        files = sorted((path / turn).glob("*.json"), key=lambda p: (order.get(p.stem, 9), p.stem))
        found.extend(files)
    return found


def load(path) -> list[Loaded]:
    """Every RoTBench file under `path` (a file or the data directory), one unit per file."""
    files = find_files(path)
    if not files:
        raise BenchmarkError(f"{path}: no RoTBench files found (expected First_Turn/*.json or Third_Turn/*.json)")
    return [load_file(f) for f in files]
