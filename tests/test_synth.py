"""The synthetic trajectory generator: valid records, byte-determinism, the error share, and every
recorded tool output equal to re-executing its call in a real Sandbox."""

import json

import pytest

from tasks.synth import generate, generate_heldout, main
from tasks.toolbox import TOOLS
from tl.calls import Call, render_prompt
from tl.classify import ALL_RIGHT, classify_feedback
from tl.sandbox import Sandbox


@pytest.fixture(scope="module")
def records():
    return generate(150, seed=3)


@pytest.fixture(scope="module")
def heldout(records):
    train_queries = [r["messages"][0]["content"] for r in records]
    return generate_heldout(40, 20, seed=3, exclude_queries=train_queries)


@pytest.fixture(scope="module")
def box():
    with Sandbox(TOOLS, workers=2) as sandbox:
        yield sandbox


def calls_and_feedback(messages):
    """(call, following tool message) pairs of a conversation."""
    pairs = []
    for i, m in enumerate(messages):
        if "tool_call" in m:
            pairs.append((Call.from_dict(m["tool_call"]), messages[i + 1]))
    return pairs


def test_every_record_is_a_valid_trajectory(records):
    assert [r["id"] for r in records] == [f"synth-{i:05d}" for i in range(150)]
    for r in records:
        assert set(r) == {"id", "tools", "messages"}
        names = [t["name"] for t in r["tools"]]
        assert len(names) == len(set(names)) and 2 <= len(names) <= 5
        assert all(TOOLS[n].schema == t for n, t in zip(names, r["tools"]))
        msgs = r["messages"]
        assert msgs[0]["role"] == "user"
        assert msgs[-1]["role"] == "assistant" and isinstance(msgs[-1]["content"], str)  # the final answer
        roles = [m["role"] for m in msgs[1:-1]]
        assert roles == ["assistant", "tool"] * (len(roles) // 2)  # call, feedback, call, feedback, ...
        pairs = calls_and_feedback(msgs)
        assert 1 <= len(pairs) <= 5  # 1-4 task calls, plus at most one mistaken call
        for call, tool_msg in pairs:
            assert set(tool_msg) == {"role", "content", "result"}
            # MAE reads the text: it must say what the sandbox reported
            assert classify_feedback(tool_msg["content"]) == tool_msg["result"]["category"]
            if tool_msg["result"]["ok"]:
                assert call.name in names  # successful calls only use offered tools
        # A mistake is followed by the corrected call, and the task ends with a successful one.
        oks = [t["result"]["ok"] for _, t in pairs]
        assert oks[-1]
        assert all(oks[i + 1] for i, ok in enumerate(oks) if not ok)  # a failure is followed by a success
        render_prompt(r["tools"], msgs, add_generation_prompt=False)  # renders without error


def test_the_requested_error_share_is_met():
    def n_flawed(recs):
        return sum(any(m["role"] == "tool" and not m["result"]["ok"] for m in r["messages"]) for r in recs)

    assert n_flawed(generate(100)) == 17  # default 0.17
    assert n_flawed(generate(40, seed=1, error_share=0.5)) == 20
    assert n_flawed(generate(30, seed=1, error_share=0.0)) == 0
    with pytest.raises(ValueError, match="error_share"):
        generate(3, error_share=1.5)


def test_mistakes_cover_the_kinds_the_paper_names(records):
    categories = {t["result"]["category"] for r in records for _, t in calls_and_feedback(r["messages"])}
    # hallucinated parameter / wrong tool, missing parameter, hallucinated tool, bad value (exception,
    # wrong type)
    assert {"param_hallucination", "param_missing", "tool_hallucination", "tool_call_failure"} <= categories


def test_recorded_outputs_equal_re_executing_in_a_sandbox(records, heldout, box):
    pairs = [p for r in records for p in calls_and_feedback(r["messages"])]
    singles, _ = heldout
    # the training calls, then the held-out gold calls
    results = box.map([c for c, _ in pairs] + [s["gold"] for s in singles])
    for (call, tool_msg), result in zip(pairs, results):
        assert (result.feedback, result.to_dict()) == (tool_msg["content"], tool_msg["result"]), call
    assert all(r.ok for r in results[len(pairs) :])  # every held-out gold call succeeds
    assert any(c.name == "run_python" for c, _ in pairs)  # the sandboxed tool is covered too


def test_heldout_splits(records, heldout):
    singles, multis = heldout
    assert len(singles) == 40 and len(multis) == 20
    train_queries = {r["messages"][0]["content"] for r in records}
    for s in singles:
        assert set(s) == {"id", "tools", "messages", "gold"}
        assert s["messages"][0]["role"] == "user" and s["messages"][-1]["role"] in ("user", "tool")
        assert s["messages"][0]["content"] not in train_queries
        assert s["gold"]["name"] in [t["name"] for t in s["tools"]]
        assert all(m["result"]["category"] == ALL_RIGHT for m in s["messages"] if m["role"] == "tool")
    for m in multis:
        assert set(m) == {"id", "tools", "query", "reference", "answer"}
        assert m["query"] not in train_queries and 1 <= len(m["reference"]) <= 4
        assert {c["name"] for c in m["reference"]} <= {t["name"] for t in m["tools"]}


def test_cli_is_byte_deterministic_for_a_seed(tmp_path):
    def run(folder, seed):
        """The three files' bytes, written into `folder`."""
        out = tmp_path / folder / "train.jsonl"
        main(
            [
                "--n",
                "40",
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--heldout_single",
                "6",
                "--heldout_multi",
                "4",
            ]
        )
        return {
            name: (tmp_path / folder / name).read_bytes()
            for name in ("train.jsonl", "heldout_single.jsonl", "heldout_multi.jsonl")
        }

    a = run("a", 5)
    b = run("b", 5)  # the same seed again
    c = run("c", 6)
    assert a == b
    assert a["train.jsonl"] != c["train.jsonl"]
    lines = a["train.jsonl"].decode().splitlines()
    assert len(lines) == 40 and all(json.loads(line)["id"] for line in lines)
    assert len(a["heldout_single.jsonl"].decode().splitlines()) == 6


def test_planted_kind_recognises_every_planted_mistake():
    import random

    from tasks.synth import FLAW_KINDS, _flawed_call, planted_kind
    from tl.calls import Call

    gold = [
        Call("get_weather_forecast", {"city": "Paris", "date": "2025-01-20"}),
        Call("convert_currency", {"amount": 20, "from_currency": "USD", "to_currency": "EUR"}),
        Call("convert_timezone", {"time": "07:45", "from_city": "Oslo", "to_city": "Rome"}),
    ]
    rng = random.Random(0)
    seen = set()  # the kinds planted at least once
    for call in gold:
        assert planted_kind(call, call) is None
        for kind in FLAW_KINDS:
            for _ in range(5):
                flawed = _flawed_call(kind, call, rng)
                if flawed is not None:
                    assert planted_kind(flawed, call) == kind, (kind, flawed)
                    seen.add(kind)
    assert seen == set(FLAW_KINDS)
    other = Call("get_weather_forecast", {"city": "Tokyo", "date": "2025-01-20"})
    assert planted_kind(other, gold[0]) is None  # a wrong value, but not one the data plants
