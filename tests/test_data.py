"""Loading trajectories: both formats, clear file:line errors for bad data, the length policy."""

import json

import pytest
import sft_tiny

from tasks.trajectories import DataError, from_raw_conversations, load_trajectories
from tl.sft import build_samples
from train_sft import mae_table

GOOD = sft_tiny.records(3)


def _write(tmp_path, lines, name="train.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def _error(path, **kw):
    with pytest.raises(DataError) as e:
        load_trajectories(path, **kw)
    return str(e.value)


def test_bad_records_give_file_line_and_reason(tmp_path):
    good = json.dumps(GOOD[0])
    path = _write(tmp_path, [good, '{"id": "x", "messages": [', good])
    assert _error(path).startswith(f"{path}:2: malformed JSON")

    no_role = {**GOOD[0], "messages": [{"content": "hi"}] + GOOD[0]["messages"]}
    path = _write(tmp_path, [good, good, json.dumps(no_role)])
    message = _error(path)
    assert message.startswith(f"{path}:3: messages[0]: missing 'role'") and "--skip_bad_records" in message

    unknown_ok = {
        **GOOD[0],
        "messages": [
            {"role": "user", "content": "?"},
            {"role": "assistant", "tool_call": {"name": "get_temp", "arguments": {}}},
            {"role": "tool", "content": '{"temp_c": 3}'},
        ],
    }
    path = _write(tmp_path, [json.dumps(unknown_ok)])
    assert _error(path).startswith(f"{path}:1: messages[1]: call to unknown tool 'get_temp'")
    assert "reports success" in _error(path)

    path = _write(tmp_path, [])
    assert _error(path) == f"{path}:1: empty file; expected one JSON trajectory per line"
    assert "no such file" in _error(str(tmp_path / "missing.jsonl"))


def test_hallucinated_tool_with_error_feedback_is_valid(tmp_path):
    """Flawed trajectories legitimately call a tool that does not exist and get an error back."""
    record = sft_tiny.records(9)[8]  # its first call is `get_wether(...)` + NameError feedback
    assert record["messages"][1]["tool_call"]["name"] == "get_wether"
    records, skipped = load_trajectories(_write(tmp_path, [json.dumps(record)]))
    assert len(records) == 1 and skipped == []


def test_skip_mode_counts_bad_records(tmp_path):
    lines = [json.dumps(GOOD[0]), "not json", json.dumps({"id": 1}), json.dumps(GOOD[1])]
    records, skipped = load_trajectories(_write(tmp_path, lines), on_error="skip")
    assert [r["id"] for r in records] == ["t0", "t1"]
    # each message starts with `file:line: `
    skipped_lines = [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in skipped]
    assert skipped_lines == ["2", "3"]


def test_raw_authors_format(tmp_path):
    tools = [{"type": "function", "function": sft_tiny.TOOLS[0]}]
    raw = {
        "id": "raw-1",
        "conversations": [
            {"role": "system", "content": json.dumps(tools)},
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": 'get_weather_current\n{"city": "Oslo"}'},
            {"role": "function", "content": '{"temp_c": 4}'},
            {"role": "assistant", "content": "It is 4 C."},
        ],
    }
    assert from_raw_conversations(raw) == {
        "id": "raw-1",
        "tools": [sft_tiny.TOOLS[0]],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "tool_call": {"name": "get_weather_current", "arguments": {"city": "Oslo"}},
            },
            {"role": "tool", "content": '{"temp_c": 4}'},
            {"role": "assistant", "content": "It is 4 C."},
        ],
    }
    path = tmp_path / "raw.json"  # the authors' files are one JSON array
    path.write_text(json.dumps([raw, raw]))
    assert len(load_trajectories(str(path))[0]) == 2


def test_overlong_policy_and_mae_counts(tmp_path):
    tok = sft_tiny.tokenizer(tmp_path)
    records, _ = load_trajectories(sft_tiny.write_jsonl(tmp_path / "t.jsonl", sft_tiny.records(12)))
    full, stats = build_samples(tok, records, max_seq_len=10_000)
    assert stats["overlong"] == 0 and len(full) == 12
    limit = sorted(len(s.input_ids) for s in full)[6]
    dropped, stats = build_samples(tok, records, max_seq_len=limit)
    assert stats["overlong"] == sum(len(s.input_ids) > limit for s in full) == 12 - len(dropped)
    cut, cut_stats = build_samples(tok, records, max_seq_len=limit, overlong="truncate")
    assert max(len(s.input_ids) for s in cut) == limit and cut_stats["overlong"] == stats["overlong"]
    # a record truncated to nothing trained is dropped too
    assert len(cut) == 12 - cut_stats["untrained"] > len(dropped)
    full, stats = build_samples(tok, records, max_seq_len=10_000)
    # records(12): 4 erroneous first calls: 2 parameter hallucinations, 1 missing parameter, 1 tool
    # hallucination.
    assert stats["masked"] == {"param_hallucination": 2, "param_missing": 1, "tool_hallucination": 1}
    assert "4 of 16 calls masked" in mae_table(stats)


LATIN_1 = b'{"id": "a", "messages": [{"role": "user", "content": "caf\xe9"}]}\n'
HOSTILE = {  # file content -> what the one-line error must say
    LATIN_1: ":1: not UTF-8 text (byte 0xe9 at column",
    bytes(range(256)) * 4: ":1: malformed JSON",  # its first line is control characters
    b'{"id": ' + b"9" * 5000 + b"}\n": ":1: unreadable JSON (ValueError",
    b"[" * 100000 + b"\n": "unreadable JSON (RecursionError",
    b'{"a":' * 100000 + b"\n": ":1: unreadable JSON (RecursionError",
}


@pytest.mark.parametrize(
    "content", HOSTILE, ids=["latin-1", "binary", "huge-int", "deep-array", "deep-object"]
)
def test_hostile_files_give_file_line_and_reason(tmp_path, content):
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    message = _error(str(path))
    assert message.startswith(str(path) + ":") and HOSTILE[content] in message


def test_directories_missing_paths_and_skipping_content_errors(tmp_path):
    assert _error(str(tmp_path)) == f"{tmp_path}: is a directory; expected a JSONL file of trajectories"
    assert _error(str(tmp_path / "nope.jsonl")).startswith(f"{tmp_path / 'nope.jsonl'}: no such file")
    odd_schema = {**GOOD[0], "tools": [{"name": "f", "parameters": {"properties": {}, "required": [["x"]]}}]}
    lines = [json.dumps(odd_schema), "\xff", json.dumps(GOOD[1]), '{"id": ' + "9" * 5000 + "}"]
    path = _write(tmp_path, lines)
    assert _error(path).startswith(f"{path}:1: messages[1]: call to unknown tool")
    records, skipped = load_trajectories(path, on_error="skip")
    assert [r["id"] for r in records] == ["t1"] and len(skipped) == 3


def test_a_huge_record_is_dropped_without_tokenising_it(tmp_path, monkeypatch):
    import tl.sft

    huge = {
        **GOOD[0],
        "messages": [{"role": "user", "content": "word " * 2_000_000}] + GOOD[0]["messages"][1:],
    }
    records, _ = load_trajectories(_write(tmp_path, [json.dumps(huge), json.dumps(GOOD[1])]))
    tok = sft_tiny.tokenizer(tmp_path)
    calls = []
    real = tl.sft.tokenize_record

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tl.sft, "tokenize_record", counted)
    samples, stats = build_samples(tok, records, max_seq_len=512)
    assert stats["overlong"] == 1 and len(samples) == 1 and len(calls) == 1


def test_the_trainers_print_one_line_and_no_traceback(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bad = tmp_path / "train.jsonl"
    bad.write_bytes(b'{"id": ' + b"9" * 5000 + b"}\n")
    root = Path(__file__).resolve().parents[1]
    import ppo_tiny

    (tmp_path / "sft").mkdir()
    sft = ppo_tiny.write_setup(tmp_path / "sft")["model"]
    for script in ("train_sft.py", "train_ppo.py"):
        extra = ["--sft", sft] if script == "train_ppo.py" else []
        done = subprocess.run(
            [sys.executable, script, "--data", str(bad), *extra],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1].startswith(script), done.stderr[-500:]
