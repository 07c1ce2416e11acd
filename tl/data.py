"""Trajectories -> SFT samples: loading and validation, MAE, PKT, and `(input_ids, weights)`.

A record (docs/ARCHITECTURE.md, "Trajectory record") is rendered by `tl.calls.render_segments`
and encoded segment by segment, so the ids are exactly those of `Tokenizer.encode_chat` on the
rendered prompt (what inference sees). Each token gets a loss weight:

- context (system, user, `Output:` feedback, role headers): 0;
- a final answer and the EOS after it: 1 (answers are never masked);
- a tool call and the EOS after it: 1, key tokens of the tool name `w` (PKT, paper Sec. 3.2),
  and 0 for every token when the feedback after the call is an error (MAE, paper Sec. 3.1).
  The masked call stays in the context of later turns; only its own tokens get no gradient.

The weight of token i is the weight of *predicting* token i (the trainer shifts by one).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

from tl.classify import ALL_RIGHT, FEEDBACK_CATEGORIES, OTHERS, authors_feedback_is_error, classify_feedback
from tl.calls import assistant_calls, Call, normalize_tools, render_prompt, render_segments

ROLES = ("system", "user", "assistant", "tool", "function")


class DataError(ValueError):
    """A bad training record; the message starts with `file:line`."""


# ----------------------------------------------------------------------------- loading


def from_raw_conversations(raw: dict) -> dict:
    """The authors' raw format -> a project record.

    Raw: `{"id", "conversations": [{"role": system|user|assistant|function, "content"}]}`; the
    system content is a JSON tool list, an assistant call is `name\\n{json arguments}` and a
    `function` message is the feedback. An assistant message that is not `name\\n{...}` is
    kept as a final answer.
    """
    convs = raw.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise ValueError(f"'conversations' must be a non-empty list; found {type(convs).__name__}")
    tools, messages = [], []
    for i, m in enumerate(convs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            found = m.get("role") if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"conversations[{i}]: expected role in {list(ROLES)}; found {found!r}")
        content = m.get("content")
        if not isinstance(content, str):
            raise ValueError(f"conversations[{i}] ({m['role']}): expected string 'content'; found {type(content).__name__}")
        if m["role"] == "system" and i == 0:
            try:
                tools = normalize_tools(content)
            except ValueError as e:
                raise ValueError(f"conversations[0] (system): expected a JSON tool list; {e}") from None
        elif m["role"] == "assistant":
            name, _, rest = content.partition("\n")
            try:
                arguments = json.loads(rest) if rest.strip() else None
            except json.JSONDecodeError:
                arguments = None
            if isinstance(arguments, dict) and name.strip() and " " not in name.strip():
                messages.append({"role": "assistant", "tool_call": {"name": name.strip(), "arguments": arguments}})
            else:
                messages.append({"role": "assistant", "content": content})
        else:
            messages.append({"role": "tool" if m["role"] == "function" else m["role"], "content": content})
    return {"id": str(raw.get("id", "")), "tools": tools, "messages": messages}


def validate_record(record) -> dict:
    """Check one record and return it in the project format (tools normalised).

    Raises ValueError with the reason: not an object, neither `messages` nor `conversations`,
    a message without a valid role, no assistant turn, a call to a tool that is not in the
    record's tool list when the feedback after it reports success (flawed trajectories
    legitimately hold hallucinated calls followed by error feedback; MAE masks those), or
    anything the renderer rejects.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object; found {type(record).__name__}")
    if "messages" not in record and "conversations" in record:
        record = from_raw_conversations(record)
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"expected a non-empty 'messages' list (or raw 'conversations'); found keys {sorted(record)}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            found = sorted(m) if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"messages[{i}]: missing 'role'; found {found}")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}]: unknown role {m['role']!r}; expected one of {list(ROLES)}")
    tools = normalize_tools(record.get("tools") or [])
    record = {**record, "tools": tools}
    segments = render_segments(tools, messages, add_generation_prompt=False)  # raises on malformed messages
    if not any(s.kind in ("call", "answer") for s in segments):
        raise ValueError("no assistant turn: nothing to train on")
    names = {t["name"] for t in tools}
    categories = feedback_categories(messages)
    for i, m in enumerate(messages):
        for call in assistant_calls(m) if m["role"] == "assistant" else []:
            if call.name not in names and categories[i] in (None, ALL_RIGHT):
                after = "the feedback after it reports success" if categories[i] else "no feedback follows it"
                raise ValueError(f"messages[{i}]: call to unknown tool {call.name!r} (tools: {sorted(names)}), "
                                 f"and {after}; such a call would be trained as correct")
    return record


def _json(text: str):
    """json.loads, with the errors a hostile file can cause (over-deep nesting, an integer of over
    4,300 digits) turned into ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"unreadable JSON ({type(e).__name__}: {str(e)[:120]})") from None


def _read_json_records(path: str):
    """Yield (line number, parsed object or the ValueError saying why not) for a JSONL file, or
    for a JSON array file (the authors' raw files), where the number is the record's 1-based index."""
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
    """Read and validate every record of a JSONL (or JSON array) file.

    on_error: "raise" stops at the first bad record with `DataError("file:line: reason")`;
    "skip" drops it (whatever is wrong with it). Returns (records, messages of the skipped ones).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; found {on_error!r}")
    records, skipped = [], []
    for n, obj in _read_json_records(path):
        try:
            if isinstance(obj, ValueError):
                raise obj
            records.append(validate_record(obj))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            message = f"{path}:{n}: {e if isinstance(e, ValueError) else f'{type(e).__name__}: {e}'}"
            if on_error == "raise":
                raise DataError(message + " (pass --skip_bad_records to drop bad records instead)") from None
            skipped.append(message)
    if not records:
        raise DataError(f"{path}:1: no valid trajectory in the file ({len(skipped)} skipped)"
                        + (f"; first: {skipped[0]}" if skipped else ""))
    return records, skipped


# ----------------------------------------------------------------------------- MAE


def feedback_categories(messages: list[dict]) -> dict[int, str | None]:
    """For each assistant message holding a call: the feedback category (`tl.classify`) of the
    tool message(s) right after it, or None when no feedback follows (e.g. a trajectory that
    ends with a call). For parallel calls answered by several tool messages, the first
    erroneous one decides. MAE reads the feedback *text*, as the paper does."""
    out = {}
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or not (m.get("tool_call") or m.get("tool_calls")):
            continue
        category = None
        j = i + 1
        while j < len(messages) and messages[j].get("role") in ("tool", "function"):
            c = classify_feedback(str(messages[j].get("content", "")))
            category = c if category in (None, ALL_RIGHT) else category
            j += 1
        out[i] = category
    return out


MAE_RULES = ("taxonomy", "authors")


def erroneous_calls(messages: list[dict], rule: str = "taxonomy") -> dict[int, str]:
    """T_e of L_MAE (paper Sec. 3.1, Eq. 1): {assistant message index: feedback category} of
    every call whose feedback is anything but `all_right`. A call with no feedback after it is
    not in T_e (there is no evidence against it). Final answers are never in T_e.

    rule "authors": the authors' `mae.py` instead -- a call is erroneous when the message right
    after it is feedback that `authors_feedback_is_error` flags (reported with its taxonomy
    category, or `others` where the taxonomy sees none).
    """
    if rule == "taxonomy":
        return {i: c for i, c in feedback_categories(messages).items() if c not in (None, ALL_RIGHT)}
    if rule != "authors":
        raise ValueError(f"rule must be one of {MAE_RULES}; found {rule!r}")
    out = {}
    for i in feedback_categories(messages):
        after = messages[i + 1] if i + 1 < len(messages) else {}
        if after.get("role") in ("tool", "function") and authors_feedback_is_error(after.get("content", "")):
            category = classify_feedback(str(after.get("content", "")))
            out[i] = OTHERS if category == ALL_RIGHT else category
    return out


# ----------------------------------------------------------------------------- PKT


def _common_prefix_len(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def key_token_positions(call_ids: list[int], rival_ids: list[list[int]], start: int = 0) -> list[int]:
    """K_i of L_PKT (paper Sec. 3.2): positions in `call_ids` of the call's key tokens.

    call_ids: the tokens of the call, starting at the tool name (` name(k="v")`).
    rival_ids: for every *other* available tool, the tokens of ` other_name(` encoded the same
        way. A rival that shares a token prefix of length p >= 1 with the call makes position p
        key: the token where the gold name diverges from it, or, when the gold name is a prefix
        of the rival's, the token right after the gold name (e.g. `(`).
    Position `start` (0), the first token of the name, is always key.
    start: where the name starts when `call_ids` (and every rival) begin with shared tokens
        before it (a later call in a parallel turn `[f(...), g(...)]`); 0 for a plain call.
    """
    if not call_ids:
        return []
    key = {start}
    for rival in rival_ids:
        p = _common_prefix_len(call_ids, rival)
        if start < p < len(call_ids):
            key.add(p)
    return sorted(key)


def key_token_weight(n_key: int, n_nonkey: int, w_max: float) -> float:
    """w = CLIP(|NK_i| / |K_i|, 1, w_max), the loss weight of each key token (paper Sec. 3.2)."""
    if n_key < 1:
        raise ValueError(f"a call has at least one key token (its first); found n_key={n_key}")
    return float(min(max(n_nonkey / n_key, 1.0), w_max))


def call_token_weights(n_tokens: int, key: list[int], w_max: float) -> list[float]:
    """Per-token weights of one supervised call under PKT: `key_token_weight` on K_i, 1 on NK_i.

    NK_i = the other tokens of the call text (rest of the name, `(`, arguments, `)`). The EOS
    that closes the turn is not part of the call text: it is trained with weight 1 but not
    counted in NK_i, as the authors' code treats closing delimiters.
    """
    w, key = key_token_weight(len(key), n_tokens - len(key), w_max), set(key)
    return [w if i in key else 1.0 for i in range(n_tokens)]


# ----------------------------------------------------------------------------- tokenisation


@dataclass
class Sample:
    """One trajectory as training ids. weights[i] is the loss weight of predicting input_ids[i]."""

    id: str
    input_ids: list[int]
    weights: list[float]
    n_calls: int = 0  # supervised or masked calls
    masked: Counter = field(default_factory=Counter)  # feedback category -> calls masked by MAE
    n_key_tokens: int = 0  # PKT key tokens of supervised calls (whatever w they got after the clip)
    turns: list = field(default_factory=list)  # (start, end, key tokens) of each trained turn, EOS included


def _token_index_at(tok, ids: list[int], char: int) -> int:
    """Index of the token of `ids` (a continuation encoding) that holds character `char`."""
    for k in range(len(ids)):
        if len(tok.decode(ids[:k + 1], continuation=True)) > char:
            return k
    raise ValueError(f"character {char} lies beyond the {len(ids)} tokens")


def segment_key_positions(tok, segment, tool_names: list[str]) -> list[int]:
    """PKT key positions inside a call segment's continuation ids, for each call in the turn.

    For a call whose name starts at character s of the segment text, the rivals are the
    segment's own prefix followed by ` other_name(` for every other tool, encoded the same way,
    so the common-prefix rule of `key_token_positions` applies from the name's first token.
    With one call whose first token carries the leading space (the usual case) this is exactly
    `key_token_positions(ids, [ids(" other(") ...])`.
    """
    ids = tok.encode_continuation(segment.text)
    key = set()
    for call, (s, _) in zip(segment.calls, segment.name_spans):
        prefix = segment.text[:s]
        rivals = [tok.encode_continuation(prefix + other + "(") for other in tool_names if other != call.name]
        key.update(key_token_positions(ids, rivals, start=_token_index_at(tok, ids, s)))
    return sorted(key)


def tokenize_record(tok, record: dict, *, mae: bool = True, pkt: bool = True, w_max: float = 9.0,
                    mae_rule: str = "taxonomy") -> Sample:
    """A validated record -> `Sample` (ids equal `tok.encode_chat(render_prompt(...))`).

    mae: calls in `erroneous_calls(messages, mae_rule)` get weight 0 on all their tokens and their EOS.
    pkt: key tokens of each supervised call get `key_token_weight` (see `call_token_weights`).
    """
    segments = render_segments(record["tools"], record["messages"], add_generation_prompt=False)
    masked_calls = erroneous_calls(record["messages"], mae_rule) if mae else {}
    names = [t["name"] for t in record["tools"]]
    sample = Sample(str(record.get("id", "")), [tok.bos_id], [0.0])
    turn_weight = 0.0  # the EOS after a turn gets 1 when the turn is trained, else 0
    turn_start = turn_keys = 0
    for n, seg in enumerate(segments):
        if seg.kind == "eos":
            sample.input_ids.append(tok.eos_id)
            sample.weights.append(turn_weight)
            if turn_weight:
                sample.turns.append((turn_start, len(sample.input_ids), turn_keys))
            continue
        turn_start, turn_keys = len(sample.input_ids), 0
        ids = tok.encode(seg.text) if n == 0 else tok.encode_continuation(seg.text)
        if seg.kind == "context":
            weights = [0.0] * len(ids)
        elif seg.kind == "answer":
            weights = [1.0] * len(ids)
        elif seg.message_index in masked_calls:
            weights = [0.0] * len(ids)
            sample.masked[masked_calls[seg.message_index]] += 1
        else:
            weights = [1.0] * len(ids)
            if pkt:
                key = segment_key_positions(tok, seg, names)
                weights = call_token_weights(len(ids), key, w_max)
                sample.n_key_tokens += len(key)
                turn_keys = len(key)
        sample.n_calls += seg.kind == "call"
        turn_weight = 1.0 if seg.kind != "context" and any(weights) else 0.0
        sample.input_ids += ids
        sample.weights += weights
    return sample


def split_turns(sample: Sample) -> list[Sample]:
    """The authors' sample unit: one sample per trained assistant turn, holding the conversation
    up to the end of that turn with only that turn's weights (its masked, MAE-dropped turns and
    everything after it gone). Encoding segment by segment makes each a prefix of the ids."""
    out = []
    for k, (start, end, keys) in enumerate(sample.turns):
        weights = [0.0] * start + sample.weights[start:end]
        out.append(Sample(f"{sample.id}@{k}", sample.input_ids[:end], weights, n_calls=int(keys > 0),
                          n_key_tokens=keys, turns=[(start, end, keys)]))
    return out


SAMPLE_UNITS = ("trajectory", "turn")


def _surely_longer(tok, record: dict, max_seq_len: int, unit: str) -> bool:
    """Whether the record (for unit "turn": already its first assistant turn) must have more than
    `max_seq_len` tokens, judged from its character count without tokenising it."""
    messages = record["messages"]
    if unit == "turn":
        first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
        messages = messages[:first + 1]
    text = render_prompt(record["tools"], messages, add_generation_prompt=False)
    return len(text) > max_seq_len * tok.max_piece_chars


def build_samples(tok, records: list[dict], *, mae: bool = True, pkt: bool = True, w_max: float = 9.0,
                  max_seq_len: int = 2048, overlong: str = "drop", unit: str = "trajectory",
                  mae_rule: str = "taxonomy") -> tuple[list[Sample], dict]:
    """Tokenise every record into samples: one per trajectory (the paper's sums over whole
    trajectories), or one per trained assistant turn (`unit="turn"`, the authors' code, see
    `split_turns`). Samples longer than `max_seq_len` are dropped (`overlong="drop"`) or cut to
    `max_seq_len` tokens (`"truncate"`, the cut-off turns are lost). A sample left with no
    trained token (all masked, or all cut off) is dropped and counted.
    Returns (samples, stats) with stats = {"records", "overlong", "untrained", "calls",
    "masked": Counter, "key_tokens", "trained_tokens"} (calls, masked and key tokens per record)."""
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"overlong must be 'drop' or 'truncate'; found {overlong!r}")
    if unit not in SAMPLE_UNITS:
        raise ValueError(f"unit must be one of {SAMPLE_UNITS}; found {unit!r}")
    samples, stats = [], {"records": len(records), "overlong": 0, "untrained": 0, "calls": 0, "masked": Counter(),
                          "key_tokens": 0, "trained_tokens": 0}
    for record in records:
        if overlong == "drop" and _surely_longer(tok, record, max_seq_len, unit):
            stats["overlong"] += 1  # not tokenised: a 50 MB record would take minutes only to be dropped
            continue
        s = tokenize_record(tok, record, mae=mae, pkt=pkt, w_max=w_max, mae_rule=mae_rule)
        stats["calls"] += s.n_calls
        stats["masked"].update(s.masked)
        stats["key_tokens"] += s.n_key_tokens
        for piece in [s] if unit == "trajectory" else split_turns(s):
            if len(piece.input_ids) > max_seq_len:
                stats["overlong"] += 1
                if overlong == "drop":
                    continue
                piece.input_ids, piece.weights = piece.input_ids[:max_seq_len], piece.weights[:max_seq_len]
            if not any(piece.weights[1:]):
                stats["untrained"] += 1
                continue
            stats["trained_tokens"] += sum(w > 0 for w in piece.weights[1:])
            samples.append(piece)
    return samples, stats


def mae_table(stats: dict) -> str:
    """Per-category counts of calls masked by MAE, like the paper's Fig. 1."""
    masked, calls = stats["masked"], max(stats["calls"], 1)
    lines = [f"MAE: {sum(masked.values())} of {stats['calls']} calls masked (erroneous feedback)",
             f"  {'feedback category':<22}{'calls':>7}{'share':>9}"]
    for category in FEEDBACK_CATEGORIES:
        if category != ALL_RIGHT:
            lines.append(f"  {category:<22}{masked[category]:>7}{100 * masked[category] / calls:>8.1f}%")
    return "\n".join(lines)
