"""No string a model can write crashes a run: lone surrogates (a JSON "\\ud800" escape) in a tool
name, a value or a plain answer go through the parser, an episode in the real sandbox, the
tokenizer and evaluate.py's files."""

import json

import evaluate
from tasks.toolbox import TOOLS, schemas
from tl.calls import Call, valid_unicode
from tl.episode import Episode
from tl.parse import parse
from tl.sandbox import Sandbox

OUTPUTS = [
    ' text_reverse(text="ab\\ud800")',
    ' {"name": "text_rev\\ud800erse", "arguments": {"text": "x"}}',
    ' {"name": "text_reverse", "arguments": {"\\udfff": 1}}',
    " The answer is \ud800.",
    ' text_reverse(text="ok")',
]


def test_parsed_calls_hold_valid_unicode():
    for out in OUTPUTS[:3]:
        for call in parse(out).calls:
            json.dumps(call.to_dict(), ensure_ascii=False).encode("utf-8")  # would raise on a lone surrogate
    assert parse(OUTPUTS[0]).calls == [Call("text_reverse", {"text": "ab\ufffd"})]
    assert valid_unicode({"k\ud800": ["\udc00", 1]}) == {"k\ufffd": ["\ufffd", 1]}


def test_an_episode_in_the_sandbox_survives_them(tiny_tokenizer):
    with Sandbox({"text_reverse": TOOLS["text_reverse"]}, workers=1) as box:
        for out in OUTPUTS:
            ep = Episode(schemas(["text_reverse"]), "Reverse \ud800 please", box, max_turns=2)
            ep.step(out)
            tiny_tokenizer.encode_chat(ep.prompt())  # the next prompt tokenizes
            if not ep.done:
                ep.step(' text_reverse(text="ok")')
        assert ep.calls[-1].result.ok and ep.calls[-1].result.output == "ko"


def test_evaluate_writes_its_files(tmp_path):
    from test_evaluate import read_jsonl, write_synthetic

    data = write_synthetic(tmp_path / "data")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(json.dumps({"id": f"single-{i:05d}", "output": o}) + "\n" for i, o in enumerate(OUTPUTS[:3]))
    )
    evaluate.main(
        [
            "--benchmark",
            "synthetic",
            "--data",
            str(data / "heldout_single.jsonl"),
            "--predictions",
            str(preds),
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert len(read_jsonl(tmp_path / "eval" / "items.jsonl")) == 3
