"""Malformed benchmark and predictions files, as an adversary writes them: every one makes
`evaluate.py` exit with one line `evaluate.py: <file>[:<record>]: <reason>`, never a traceback.

Each case writes one small data set in a benchmark's own format (valid except for one flaw) and
names the file, and the record where there is one, that the message must point at."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import evaluate
from tasks import gold_output, load
from tasks.run import score

ROOT = Path(__file__).resolve().parents[1]
DIR = object()  # in a file table: a directory where a file is expected

FINISH = {
    "name": "finish",
    "description": "Finish.",
    "parameters": {
        "type": "object",
        "properties": {"answer": {"type": "string", "description": "a"}},
        "required": ["answer"],
    },
}
ASK = {
    "name": "ask_to_user",
    "description": "Ask.",
    "parameters": {
        "type": "object",
        "properties": {"question": {"type": "string", "description": "q"}},
        "required": ["question"],
    },
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "c"}},
        "required": ["city"],
    },
}
TOOLS = [WEATHER, ASK, FINISH]
DEEP = "[" * 100_000 + "]" * 100_000  # json would raise RecursionError
HUGE = "1" * 5000  # over Python's 4,300-digit limit for int(): ValueError in json
NOT_UTF8 = b"\xff\xfe"  # e.g. a UTF-16 byte-order mark


def prompt(tools_json):
    return f"You can use the following tools:\n{tools_json}\n\nLet's Begin!"


def rot(rid="q", tools=TOOLS, gold=None, system=None, history=()):
    """A RoTBench record; by default its system prompt lists `tools` and its gold calls get_weather."""
    if gold is None:
        gold = ['Thought:\nAction: get_weather\nAction Input: {"city": "Paris"}']
    if system is None:
        system = prompt(json.dumps(tools))
    return {
        "id": rid,
        "scenario": "RS",
        "conversations": [
            {"from": "system", "value": system},
            {"from": "user", "value": "Weather in Paris?\nBegin!\n"},
            *history,
            {"from": "assistant", "value": gold},
        ],
    }


def alpaca(**over):
    api = {
        "Name": "Nager",
        "Category": "Calendar",
        "Function_Description": {
            "Holidays": 'Holidays.\nParameters: {"year": "Required. integer. The year."}\nOutput: x'
        },
        "Instructions": ["Holidays in 2023?"],
        "Golden_Answers": [[{"Action": "Holidays", "Action_Input": '{"year": 2023}'}]],
    }
    return {**api, **over}


def eyes(**over):
    task = {
        "id": "t1",
        "conversations": [
            {"from": "system", "value": prompt(json.dumps(TOOLS))},
            {"from": "user", "value": "Weather?"},
        ],
        "path": "ToolEyes/Tool_Library/W/w",
        "scenario": "RS",
    }
    return {**task, **over}


BFCL_FN = {
    "name": "area",
    "description": "Area.",
    "parameters": {
        "type": "dict",
        "properties": {"base": {"type": "integer", "description": "b"}},
        "required": ["base"],
    },
}


def bq(rid="simple_0", **over):
    return {
        "id": rid,
        "question": [[{"role": "user", "content": "Area for base 10?"}]],
        "function": [BFCL_FN],
        **over,
    }


def ba(gt=None, rid="simple_0"):
    if gt is None:
        gt = [{"area": {"base": [10]}}]
    return {"id": rid, "ground_truth": gt}


def single(**over):
    rec = {
        "id": "s0",
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "gold": {"name": "get_weather", "arguments": {"city": "Oslo"}},
    }
    return {**rec, **over}


def multi(**over):
    return {
        "id": "m0",
        "tools": [WEATHER],
        "query": "Weather in Oslo?",
        "reference": [],
        "answer": "Cold.",
        **over,
    }


def pred(**over):
    return {"id": "s0", "output": 'get_weather(city="Oslo")', **over}


def lines(*records):
    """JSON Lines of records (a str is written as it is)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


# (--benchmark, --data, its main file); VALID: a small valid data set per benchmark, files relative to
# tmp_path.
ROT = ("rotbench", "RoTBench", "RoTBench/First_Turn/clean.json")
ALP = ("toolalpaca", "ToolAlpaca", "ToolAlpaca/eval_real.json")
EYE = ("tooleyes", "ToolEyes", "ToolEyes/Test_Data/scenario_data_zero_processed.json")
EYE_CFG = "ToolEyes/Tool_Library/W/w/config_gpt4.json"
BQ = ("bfcl", "BFCL_v3", "BFCL_v3/BFCL_v3_simple.json")
BA = "BFCL_v3/possible_answer/BFCL_v3_simple.json"
SYN1 = ("synthetic", "data", "data/heldout_single.jsonl")
SYN2 = ("synthetic", "data", "data/heldout_multi.jsonl")
PRED = "preds.jsonl"

VALID = {
    "rotbench": {ROT[2]: json.dumps([rot()])},
    "toolalpaca": {ALP[2]: json.dumps([alpaca()])},
    "tooleyes": {EYE[2]: json.dumps([eyes()]), EYE_CFG: json.dumps(TOOLS)},
    "bfcl": {BQ[2]: lines(bq()), BA: lines(ba())},
    "synthetic": {SYN1[2]: lines(single()), SYN2[2]: lines(multi())},
}

# (case id, (benchmark, data folder), {file: content that replaces the valid one}, file named, record named)
CASES = []


def case(name, unit, files, where, record=None, predictions="gold"):
    CASES.append(pytest.param(unit[0], unit[1], files, where, record, predictions, id=name))


# Text-level flaws, in every file each loader reads: (name, content of a JSON-list file, of a JSONL file,
# line named in each).
TEXT_FLAWS = [
    ("not-utf8", b'[{"id": "q",\n "x": "' + NOT_UTF8 + b'"}]', b'{"id": "' + NOT_UTF8 + b'"}\n', "2", "1"),
    ("deep-nesting", "[\n" + DEEP + "]", lines(DEEP), "2", "1"),
    ("huge-int", f'[\n{{"id": {HUGE}}}]', lines(f'{{"id": {HUGE}}}'), "2", "1"),
    ("truncated", '[{"id": "q",\n "conversations": [', lines('{"id": "q", "tools": ['), "2", "1"),
    ("empty", "", "", None, None),
    ("directory", DIR, DIR, None, None),
]


def _in_folder(target):
    """The file's path under its data folder, for a case id."""
    return Path(*Path(target).parts[1:])


for flaw, as_json, as_jsonl, json_line, jsonl_line in TEXT_FLAWS:
    for unit, target in [(ROT, ROT[2]), (ALP, ALP[2]), (EYE, EYE[2]), (EYE, EYE_CFG)]:
        case(f"{unit[0]}:{_in_folder(target)}:{flaw}", unit, {target: as_json}, target, json_line)
    for unit, target in [(BQ, BQ[2]), (BQ, BA), (SYN1, SYN1[2]), (SYN2, SYN2[2])]:
        if not (flaw == "empty" and target == BA):  # an empty answer file: the count check below
            case(f"{unit[0]}:{_in_folder(target)}:{flaw}", unit, {target: as_jsonl}, target, jsonl_line)
    if flaw not in ("empty", "directory"):  # both below
        case(f"predictions:{flaw}", SYN1, {PRED: as_jsonl}, PRED, jsonl_line, predictions=PRED)

# RoTBench records
case("rotbench:record-not-object", ROT, {ROT[2]: json.dumps([rot(), 7])}, ROT[2], "1")
case("rotbench:top-level-object", ROT, {ROT[2]: json.dumps(rot())}, ROT[2])
case("rotbench:id-not-string", ROT, {ROT[2]: json.dumps([{**rot(), "id": 3}])}, ROT[2], "0")
case("rotbench:no-conversations", ROT, {ROT[2]: json.dumps([rot(), {"id": "b"}])}, ROT[2], "1")
case(
    "rotbench:conversations-string",
    ROT,
    {ROT[2]: json.dumps([{**rot(), "conversations": "hi"}])},
    ROT[2],
    "0",
)
case(
    "rotbench:turn-not-object",
    ROT,
    {ROT[2]: json.dumps([{**rot(), "conversations": [1, 2, 3]}])},
    ROT[2],
    "0",
)
case("rotbench:no-tool-list", ROT, {ROT[2]: json.dumps([rot(system="You are helpful.")])}, ROT[2], "0")
case(
    "rotbench:tool-list-object", ROT, {ROT[2]: json.dumps([rot(system=prompt('{"name": "x"}'))])}, ROT[2], "0"
)
case("rotbench:tool-list-deep", ROT, {ROT[2]: json.dumps([rot(system=prompt(DEEP))])}, ROT[2], "0")
case("rotbench:tool-list-huge-int", ROT, {ROT[2]: json.dumps([rot(system=prompt(f"[{HUGE}]"))])}, ROT[2], "0")
case("rotbench:tool-list-numbers", ROT, {ROT[2]: json.dumps([rot(tools=[1, 2, 3])])}, ROT[2], "0")
case(
    "rotbench:tool-without-name",
    ROT,
    {ROT[2]: json.dumps([rot(tools=[WEATHER, {"description": "d"}, FINISH])])},
    ROT[2],
    "0",
)
case("rotbench:one-tool", ROT, {ROT[2]: json.dumps([rot(tools=[FINISH])])}, ROT[2], "0")
case(
    "rotbench:openai-wrapper-without-function",
    ROT,
    {ROT[2]: json.dumps([rot(tools=[WEATHER, ASK, {"type": "function", "name_": "finish"}])])},
    ROT[2],
    "0",
)
case("rotbench:gold-number", ROT, {ROT[2]: json.dumps([rot(gold=5)])}, ROT[2], "0")
case("rotbench:gold-empty-list", ROT, {ROT[2]: json.dumps([rot(gold=[])])}, ROT[2], "0")
case(
    "rotbench:history-value-number",
    ROT,
    {ROT[2]: json.dumps([rot(history=[{"from": "function", "value": 1}])])},
    ROT[2],
    "0",
)
case(
    "rotbench:history-speaker",
    ROT,
    {ROT[2]: json.dumps([rot(history=[{"from": "robot", "value": "x"}])])},
    ROT[2],
    "0",
)
case(
    "rotbench:turn-file-is-directory",
    ROT,
    {"RoTBench/Third_Turn/clean.json": DIR},
    "RoTBench/Third_Turn/clean.json",
)

# ToolAlpaca records
case("toolalpaca:record-not-object", ALP, {ALP[2]: json.dumps(["api"])}, ALP[2], "0")
case(
    "toolalpaca:no-name",
    ALP,
    {ALP[2]: json.dumps([alpaca(), {k: v for k, v in alpaca().items() if k != "Name"}])},
    ALP[2],
    "1",
)
case("toolalpaca:instructions-string", ALP, {ALP[2]: json.dumps([alpaca(Instructions="x")])}, ALP[2], "0")
case("toolalpaca:answer-count", ALP, {ALP[2]: json.dumps([alpaca(Golden_Answers=[])])}, ALP[2], "0")
case(
    "toolalpaca:description-list",
    ALP,
    {ALP[2]: json.dumps([alpaca(Function_Description=["x"])])},
    ALP[2],
    "0",
)
case(
    "toolalpaca:description-number",
    ALP,
    {ALP[2]: json.dumps([alpaca(Function_Description={"f": 5})])},
    ALP[2],
    "0",
)
DEEP_PARAMETERS = 'F.\nParameters: {"a": ' + "[" * 5000 + "]" * 5000 + "}\nOutput: x"
case(
    "toolalpaca:parameters-deep",
    ALP,
    {ALP[2]: json.dumps([alpaca(Function_Description={"f": DEEP_PARAMETERS})])},
    ALP[2],
    "0",
)
case("toolalpaca:instruction-number", ALP, {ALP[2]: json.dumps([alpaca(Instructions=[5])])}, ALP[2], "0")

# ToolEyes records and their Tool_Library configs
case("tooleyes:record-not-object", EYE, {EYE[2]: json.dumps([None])}, EYE[2], "0")
case(
    "tooleyes:no-user-turn",
    EYE,
    {EYE[2]: json.dumps([eyes(conversations=[{"from": "system", "value": "x"}])])},
    EYE[2],
    "0",
)
case(
    "tooleyes:conversations-object",
    EYE,
    {EYE[2]: json.dumps([eyes(conversations={"user": "x"})])},
    EYE[2],
    "0",
)
case("tooleyes:config-object", EYE, {EYE_CFG: json.dumps(WEATHER | {"x": 1})}, EYE_CFG)
case("tooleyes:config-entry-number", EYE, {EYE_CFG: json.dumps([WEATHER, 5])}, EYE_CFG, "tools[1]")
case("tooleyes:config-empty-list", EYE, {EYE_CFG: "[]"}, EYE_CFG)
case(
    "tooleyes:no-config-no-prompt",
    EYE,
    {EYE_CFG: None, EYE[2]: json.dumps([eyes(conversations=[{"from": "user", "value": "Weather?"}])])},
    EYE[2],
    "0",
)

# BFCL questions and possible answers
case("bfcl:question-not-object", BQ, {BQ[2]: lines([1, 2])}, BQ[2], "1")
case("bfcl:no-function", BQ, {BQ[2]: lines({"id": "simple_0", "question": [[]]})}, BQ[2], "1")
case("bfcl:function-without-name", BQ, {BQ[2]: lines(bq(function=[{"description": "d"}]))}, BQ[2], "1")
case(
    "bfcl:function-openai-wrapped",
    BQ,
    {BQ[2]: lines(bq(function=[{"type": "function", "function": BFCL_FN}]))},
    BQ[2],
    "1",
)


def bfcl_fn_with(base):
    """BFCL_FN with `base` as the schema of its one parameter."""
    return {**BFCL_FN, "parameters": {"type": "dict", "properties": {"base": base}}}


case(
    "bfcl:parameter-type-unknown",
    BQ,
    {BQ[2]: lines(bq(function=[bfcl_fn_with({"type": "int32"})]))},
    BQ[2],
    "1",
)
case(
    "bfcl:parameter-type-list",
    BQ,
    {BQ[2]: lines(bq(function=[bfcl_fn_with({"type": ["integer"]})]))},
    BQ[2],
    "1",
)
case("bfcl:parameter-not-object", BQ, {BQ[2]: lines(bq(function=[bfcl_fn_with("integer")]))}, BQ[2], "1")
case("bfcl:question-string", BQ, {BQ[2]: lines(bq(question="Area?"))}, BQ[2], "1")
case("bfcl:id-missing", BQ, {BQ[2]: lines({k: v for k, v in bq().items() if k != "id"})}, BQ[2], "1")
case("bfcl:answer-count", BQ, {BA: lines(ba(), ba())}, BA)
case("bfcl:answer-empty-file", BQ, {BA: ""}, BA)
case("bfcl:answer-file-missing", BQ, {BA: None}, BA)
case("bfcl:ground-truth-int", BQ, {BA: lines(ba(gt=5))}, BA, "1")
case("bfcl:ground-truth-string", BQ, {BA: lines(ba(gt="area(base=10)"))}, BA, "1")
case("bfcl:ground-truth-empty", BQ, {BA: lines(ba(gt=[]))}, BA, "1")
case("bfcl:ground-truth-entry-string", BQ, {BA: lines(ba(gt=["area"]))}, BA, "1")
case("bfcl:ground-truth-params-list", BQ, {BA: lines(ba(gt=[{"area": [10]}]))}, BA, "1")
case("bfcl:acceptable-values-int", BQ, {BA: lines(ba(gt=[{"area": {"base": 10}}]))}, BA, "1")
case("bfcl:acceptable-values-string", BQ, {BA: lines(ba(gt=[{"area": {"base": "10"}}]))}, BA, "1")
DICT_FN = {
    **BFCL_FN,
    "parameters": {"type": "dict", "properties": {"opts": {"type": "dict", "description": "o"}}},
}
case(
    "bfcl:acceptable-dict-values-int",
    BQ,
    {BQ[2]: lines(bq(function=[DICT_FN])), BA: lines(ba(gt=[{"area": {"opts": [{"k": 1}]}}]))},
    BA,
    "1",
)
case("bfcl:answer-not-object", BQ, {BA: lines([{"area": {"base": [10]}}])}, BA, "1")

# The synthetic held-out split
case("synthetic:record-not-object", SYN1, {SYN1[2]: lines(single(), '"s1"')}, SYN1[2], "2")
case(
    "synthetic:gold-missing",
    SYN1,
    {SYN1[2]: lines({k: v for k, v in single().items() if k != "gold"})},
    SYN1[2],
    "1",
)
case(
    "synthetic:gold-arguments-list",
    SYN1,
    {SYN1[2]: lines(single(gold={"name": "get_weather", "arguments": [1]}))},
    SYN1[2],
    "1",
)
case("synthetic:tools-string", SYN1, {SYN1[2]: lines(single(tools="get_weather"))}, SYN1[2], "1")
case("synthetic:messages-numbers", SYN1, {SYN1[2]: lines(single(messages=[1]))}, SYN1[2], "1")
case(
    "synthetic:message-role-unknown",
    SYN1,
    {SYN1[2]: lines(single(messages=[{"role": "robot", "content": "x"}]))},
    SYN1[2],
    "1",
)
case(
    "synthetic:message-role-a-list",
    SYN1,
    {SYN1[2]: lines(single(messages=[{"role": ["user"], "content": "x"}]))},
    SYN1[2],
    "1",
)
case(
    "synthetic:gold-deep-arguments",
    SYN1,
    {
        SYN1[2]: lines(
            '{"id": "s0", "tools": [], "messages": [], "gold": '
            '{"name": "f", "arguments": {"a": ' + "[" * 900 + "]" * 900 + "}}}"
        )
    },
    SYN1[2],
    "1",
)
case("synthetic:query-number", SYN2, {SYN2[2]: lines(multi(query=5))}, SYN2[2], "1")
case("synthetic:reference-number", SYN2, {SYN2[2]: lines(multi(reference=3))}, SYN2[2], "1")

# Predictions files
case("predictions:line-is-list", SYN1, {PRED: lines([1])}, PRED, "1", predictions=PRED)
case("predictions:no-output", SYN1, {PRED: lines({"id": "s0"})}, PRED, "1", predictions=PRED)
case("predictions:id-object", SYN1, {PRED: lines(pred(id={"a": 1}))}, PRED, "1", predictions=PRED)
case(
    "predictions:benchmark-list",
    SYN1,
    {PRED: lines(pred(), pred(benchmark=["x"]))},
    PRED,
    "2",
    predictions=PRED,
)
case("predictions:empty", SYN1, {PRED: ""}, PRED, predictions=PRED)
case(
    "predictions:unit-file-is-directory",
    SYN1,
    {"preds/synthetic/single/predictions.jsonl": DIR},
    "preds/synthetic/single/predictions.jsonl",
    predictions="preds",
)
case(
    "predictions:folder-without-files",
    SYN1,
    {"preds/other.jsonl": lines(pred())},
    "preds/synthetic/single/predictions.jsonl",
    predictions="preds",
)
case(
    "predictions:deep-output",
    SYN1,
    {PRED: lines('{"id": "s0", "output": ' + "[" * 900 + "]" * 900 + "}")},
    PRED,
    "1",
    predictions=PRED,
)
case("predictions:output-null", SYN1, {PRED: lines(pred(output=None))}, PRED, "1", predictions=PRED)

# More of the adversary's: a data path that holds nothing, JSON text inside a value, odd keys
for unit in (ROT, ALP, EYE, BQ, SYN1):
    case(f"{unit[0]}:no-such-folder", (unit[0], "nowhere"), {}, "nowhere")
case(
    "synthetic:gold-arguments-text-deep",
    SYN1,
    {SYN1[2]: lines(single(gold={"name": "get_weather", "arguments": DEEP}))},
    SYN1[2],
    "1",
)
case(
    "tooleyes:config-tool-text-deep",
    EYE,
    {EYE_CFG: json.dumps([WEATHER, "{" + '"a": {' * 5000 + "}" * 5001])},
    EYE_CFG,
)
case(
    "tooleyes:speaker-list",
    EYE,
    {EYE[2]: json.dumps([eyes(conversations=[{"from": ["user"], "value": "x"}])])},
    EYE[2],
    "0",
)
case("bfcl:function-empty", BQ, {BQ[2]: lines(bq(function=[]))}, BQ[2], "1")
case(
    "bfcl:required-not-list",
    BQ,
    {BQ[2]: lines(bq(function=[{**BFCL_FN, "parameters": {**BFCL_FN["parameters"], "required": "base"}}]))},
    BQ[2],
    "1",
)
case(
    "bfcl:question-turn-number",
    BQ,
    {BQ[2]: lines(bq(question=[[{"role": "user", "content": "x"}], 5]))},
    BQ[2],
    "1",
)
case("bfcl:question-no-message", BQ, {BQ[2]: lines(bq(question=[[]]))}, BQ[2], "1")
# line 3: the blank line counts
case(
    "bfcl:second-line-bad",
    BQ,
    {BQ[2]: lines(bq(), "", bq("simple_1", function="area")), BA: lines(ba(), ba(rid="simple_1"))},
    BQ[2],
    "3",
)


def write(root: Path, files: dict):
    for rel, content in files.items():
        path = root / rel
        if content is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir()
            (path / "inside.json").write_text("[]")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def setup(tmp_path, benchmark, data, files, predictions):
    """Write the benchmark's valid files with `files` replacing some; evaluate.py's arguments."""
    write(tmp_path, {**VALID[benchmark], **files})
    if predictions == PRED and PRED not in files:
        write(tmp_path, {PRED: lines(pred())})
    preds = "gold" if predictions == "gold" else str(tmp_path / predictions)
    return [
        "--benchmark",
        benchmark,
        "--data",
        str(tmp_path / data),
        "--predictions",
        preds,
        "--out",
        str(tmp_path / "out"),
    ]


def test_the_valid_files_evaluate(tmp_path):
    # every case below differs from these in one flaw
    for benchmark, data in [(ROT[0], ROT[1]), (ALP[0], ALP[1]), (BQ[0], BQ[1]), (SYN1[0], SYN1[1])]:
        summary = evaluate.main(setup(tmp_path / benchmark, benchmark, data, {}, "gold"))
        assert [(m["n"], m["CF"]) for m in summary.values()] == [(1, 100.0)], (benchmark, summary)
    summary = evaluate.main(setup(tmp_path / "p", "synthetic", SYN1[1], {}, PRED))
    assert summary["synthetic/single"]["CF"] == 100.0
    # multi-turn: loaded here (evaluate.py runs it with a model)
    setup(tmp_path / "e", "tooleyes", EYE[1], {}, "gold")
    (task,) = load("tooleyes", tmp_path / "e" / EYE[1])[0].items
    assert [t["name"] for t in task.tools] == ["get_weather", "ask_to_user", "finish"]
    synthetic = load("synthetic", tmp_path / "p" / "data")
    assert [len(u.items) for u in synthetic] == [1, 1]


# "name", not "benchmark": that is pytest-benchmark's fixture
@pytest.mark.parametrize("name, data, files, where, record, predictions", CASES)
def test_malformed_file_exits_with_one_line_naming_it(
    tmp_path, name, data, files, where, record, predictions
):
    args = setup(tmp_path, name, data, files, predictions)
    with pytest.raises(SystemExit) as e:
        evaluate.main(args)
    message = e.value.code
    assert isinstance(message, str) and message.startswith("evaluate.py: ") and "\n" not in message, message
    # file:record, then the reason (or more about the place: "file:3 turn 2: ...")
    if record is None:
        place = ""
    elif record.isdigit():
        place = f":{record}"
    else:
        place = f": {record}"  # a list index: tools[1]
    named = re.escape(f"{tmp_path / where}{place}") + r"(:| \S)"
    assert re.search(named, message), message


def test_case_table_covers_every_loader():
    assert len(CASES) >= 60
    assert {p.values[0] for p in CASES} == set(VALID)


def test_openai_style_tool_list_in_a_rotbench_prompt_is_read(tmp_path):
    # tl.schema reads OpenAI's {"type": "function", "function": {...}} spelling; the roles by position
    # still work
    wrapped = [{"type": "function", "function": t} for t in TOOLS]
    write(tmp_path, {"clean.json": json.dumps([rot(tools=wrapped)])})
    (item,) = load("rotbench", tmp_path / "clean.json")[0].items
    assert [t["name"] for t in item.tools] == ["get_weather", "ask_to_user", "finish"]
    assert item.options["unchecked_tools"] == ("ask_to_user", "finish")
    assert score([item], {item.id: gold_output(item)})[0]["CF"] == 100.0


def test_lone_surrogates_and_a_byte_order_mark(tmp_path):
    # a "\ud800" escape decodes to a string that cannot be written as UTF-8: read as U+FFFD
    text = json.dumps([{**rot(rid="q\ud800"), "scenario": "R\udc00S"}])
    write(tmp_path, {"clean.json": b"\xef\xbb\xbf" + text.encode()})
    evaluate.main(
        [
            "--benchmark",
            "rotbench",
            "--data",
            str(tmp_path / "clean.json"),
            "--predictions",
            "gold",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    (record,) = [json.loads(line) for line in open(tmp_path / "out" / "items.jsonl", encoding="utf-8")]
    assert (record["id"], record["scenario"], record["CF"]) == ("q\ufffd", "R\ufffdS", True)


def test_gold_the_benchmark_ships_broken_is_skipped_not_fatal(tmp_path):
    # ToolAlpaca's rule (its 4 CurrencyBeacon items): an unreadable gold Action_Input skips that item
    steps = [
        [{"Action": "Holidays", "Action_Input": '{"year": 2023}'}],
        [{"Action": "Holidays", "Action_Input": DEEP}],
        [{"Action": "Holidays", "Action_Input": f'{{"year": {HUGE}}}'}],
        [7],
    ]
    write(
        tmp_path,
        {"eval_real.json": json.dumps([alpaca(Instructions=["a", "b", "c", "d"], Golden_Answers=steps)])},
    )
    (unit,) = load("toolalpaca", tmp_path)
    assert [it.id for it in unit.items] == ["Nager/0"]
    assert [s.where.rsplit(" ", 1)[1] for s in unit.skipped] == ["1", "2", "3"]
    assert all(s.reason.startswith("gold step 0 is not a readable call: ") for s in unit.skipped)


@pytest.mark.parametrize(
    "output",
    [
        "Action: get_weather\nAction Input: " + DEEP,  # RecursionError in RoTBench's json.loads
        'Action: get_weather\nAction Input: {"city": ' + HUGE + "}",  # ValueError: a 5,000-digit integer
        "Action: get_weather\nAction Input: " + "x" * 200_000,  # longer than any output is read
    ],
    ids=["deep", "huge-int", "long"],
)
def test_model_text_never_stops_a_run(tmp_path, output):
    # predictions are model text, not a malformed file: unreadable text is an unparsable answer
    args = setup(tmp_path, "rotbench", ROT[1], {PRED: lines({"id": "q", "output": output})}, PRED)
    evaluate.main(args)
    (record,) = [json.loads(line) for line in open(tmp_path / "out" / "items.jsonl")]
    assert (record["category"], record["CF"]) == ("unparsable", False)


@pytest.mark.parametrize(
    "files, where",
    [
        ({ROT[2]: "[\n" + DEEP + "]"}, ROT[2] + ":2: JSON nested deeper than 100 levels"),
        ({BA: lines(ba(gt=[{"area": {"base": 10}}]))}, BA + ":1: ground_truth area.base should be a list"),
    ],
    ids=["rotbench-deep", "bfcl-values-int"],
)
def test_command_line_prints_one_line_and_no_traceback(tmp_path, files, where):
    benchmark = "rotbench" if ROT[2] in files else "bfcl"
    args = setup(tmp_path, benchmark, ROT[1] if benchmark == "rotbench" else BQ[1], files, "gold")
    run = subprocess.run(
        [sys.executable, "evaluate.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.splitlines() == [run.stderr.strip()]  # one line
    assert run.stderr.startswith(f"evaluate.py: {tmp_path / where}")
