"""Training trajectories (docs/ARCHITECTURE.md, "Trajectory record"): reading and validating a
training file (a bad record is a `file:line: reason` DataError, or dropped with on_error="skip"),
and the authors' raw format.
"""

from __future__ import annotations

import json
import os

from tl.calls import assistant_calls, normalize_tools, render_segments
from tl.classify import ALL_RIGHT, feedback_categories
from tl.errors import InputError

ROLES = ("system", "user", "assistant", "tool", "function")


class DataError(InputError):
    """A bad training record; the message starts with `file:line`."""


def from_raw_conversations(raw: dict) -> dict:
    """The authors' raw format `{"id", "conversations": [{"role", "content"}]}` -> a project record:
    a first system content is a JSON tool list, an assistant `name\\n{json arguments}` a call (any
    other assistant text a final answer), a `function` message the feedback."""
    convs = raw.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise ValueError(f"'conversations' must be a non-empty list; found {type(convs).__name__}")
    tools = []
    messages = []
    for i, m in enumerate(convs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            found = m.get("role") if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"conversations[{i}]: expected role in {list(ROLES)}; found {found!r}")
        content = m.get("content")
        if not isinstance(content, str):
            raise ValueError(
                f"conversations[{i}] ({m['role']}): expected string 'content'; found {type(content).__name__}"
            )
        if m["role"] == "system" and i == 0:
            try:
                tools = normalize_tools(content)
            except ValueError as e:
                raise ValueError(f"conversations[0] (system): expected a JSON tool list; {e}") from None
        elif m["role"] == "assistant":
            name, _, rest = content.partition("\n")
            name = name.strip()
            try:
                arguments = json.loads(rest) if rest.strip() else None
            except json.JSONDecodeError:
                arguments = None
            # a call is a one-word name over a JSON object; anything else is a final answer
            if isinstance(arguments, dict) and name and " " not in name:
                messages.append({"role": "assistant", "tool_call": {"name": name, "arguments": arguments}})
            else:
                messages.append({"role": "assistant", "content": content})
        else:
            role = "tool" if m["role"] == "function" else m["role"]
            messages.append({"role": role, "content": content})
    return {"id": str(raw.get("id", "")), "tools": tools, "messages": messages}


def validate_record(record) -> dict:
    """One record in the project format, ready for SFT and PPO: tools normalised, plus `segments`
    (its rendering, `tl.calls.render_segments`) and `feedback` (its feedback category per call,
    `tl.classify.feedback_categories`), each computed once here. Or ValueError with the reason:
    no messages, a bad role, no assistant turn, anything the renderer rejects, or a call to an
    unlisted tool whose feedback reports success (with error feedback it is a flaw MAE masks)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object; found {type(record).__name__}")
    if "messages" not in record and "conversations" in record:
        record = from_raw_conversations(record)
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError(
            f"expected a non-empty 'messages' list (or raw 'conversations'); found keys {sorted(record)}"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            found = sorted(m) if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"messages[{i}]: missing 'role'; found {found}")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}]: unknown role {m['role']!r}; expected one of {list(ROLES)}")
    tools = normalize_tools(record.get("tools") or [])
    segments = render_segments(tools, messages, add_generation_prompt=False)  # raises on malformed messages
    if not any(s.kind in ("call", "answer") for s in segments):
        raise ValueError("no assistant turn: nothing to train on")
    names = {t["name"] for t in tools}
    categories = feedback_categories(messages)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        for call in assistant_calls(m):
            if call.name not in names and categories[i] in (None, ALL_RIGHT):
                after = "the feedback after it reports success" if categories[i] else "no feedback follows it"
                raise ValueError(
                    f"messages[{i}]: call to unknown tool {call.name!r} (tools: {sorted(names)}), "
                    f"and {after}; such a call would be trained as correct"
                )
    return {**record, "tools": tools, "segments": segments, "feedback": categories}


def _json(text: str):
    """json.loads; a hostile file's errors (deep nesting, a 4,300-digit integer) as ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"unreadable JSON ({type(e).__name__}: {str(e)[:120]})") from None


def _read_json_records(path: str):
    """(line number, object or the ValueError saying why not) per record of a JSONL file, or of a
    JSON array file (the authors' raw files; the number is then the 1-based index)."""
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory; expected a JSONL file of trajectories")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file; expected JSONL trajectories (docs/ARCHITECTURE.md)")
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise DataError(f"{path}:1: empty file; expected one JSON trajectory per line")
    if data.lstrip().startswith(b"["):
        try:
            array = _json(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{path}:1: {e}; a file starting with '[' must be one JSON array") from None
        yield from ((i + 1, r) for i, r in enumerate(array))
        return
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            yield n, _json(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield n, ValueError(f"not UTF-8 text (byte {line[e.start]:#04x} at column {e.start + 1})")
        except ValueError as e:
            yield n, e


def load_trajectories(path: str, on_error: str = "raise") -> tuple[list[dict], list[str]]:
    """(records, messages of the skipped ones) of a JSONL (or JSON array) file. on_error "raise":
    `DataError("file:line: reason")` at the first bad record; "skip": drop it."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; found {on_error!r}")
    records = []
    skipped = []
    for n, obj in _read_json_records(path):
        try:
            if isinstance(obj, ValueError):
                raise obj
            records.append(validate_record(obj))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            # a ValueError says what is wrong; anything else also needs its type to make sense
            reason = e if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            message = f"{path}:{n}: {reason}"
            if on_error == "raise":
                raise DataError(message + " (pass --skip_bad_records to drop bad records instead)") from None
            skipped.append(message)
    if not records:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise DataError(f"{path}:1: no valid trajectory in the file ({len(skipped)} skipped){first}")
    return records, skipped
