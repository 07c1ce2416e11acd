"""RoTBench's own evaluate.py rules that tl.classify applies in mode "rotbench" (the metrics
TS/PI/CF are read from these classifications)."""

from tasks.rotbench import role_rules
from tl.calls import Call
from tl.classify import classify


def tool(name, *keys):
    return {
        "name": name,
        "description": "",
        "parameters": {
            "type": "object",
            "properties": {k: {"type": "string", "description": ""} for k in keys},
            "required": list(keys),
        },
    }


# A noisy-variant tool list: names shuffled, so the ask_to_user and finish *roles* are the last
# two tools ("get_x" asks the user, "get_y" finishes) while a tool literally named "finish" is
# some other API.
NOISY = [tool("finish", "type"), tool("search", "q"), tool("get_x", "question"), tool("get_y", "answer")]
ROLES = role_rules(NOISY)


def test_literal_finish_counts_for_the_renamed_finish_role_and_its_answer_is_not_checked():
    gold = [Call("get_y", {"answer": "Paris"})]
    c = classify('finish(answer="no idea")', gold, NOISY, mode="rotbench", **ROLES)
    assert c.category == "correct" and c.details["cf"]
    # without the role rules the same text is a different, existing tool
    assert classify('finish(answer="no idea")', gold, NOISY, mode="rotbench").category == "wrong_tool"


def test_values_are_unchecked_for_the_roles_by_position_and_by_name():
    assert ROLES == {
        "unchecked_tools": ("get_x", "get_y", "ask_to_user", "finish"),
        "aliases": {"finish": "get_y"},
    }
    ask = [Call("get_x", {"question": "Which city?"})]
    assert classify('get_x(question="Where?")', ask, NOISY, mode="rotbench", **ROLES).category == "correct"
    # the tool *named* finish is some other API here, but evaluate.py compares the gold's name with
    # "finish" / "ask_to_user" too, so its values are not checked either (only its keys)
    fin = [Call("finish", {"type": "music"})]
    assert classify('finish(type="diy")', fin, NOISY, mode="rotbench", **ROLES).category == "correct"
    assert classify('finish(kind="diy")', fin, NOISY, mode="rotbench", **ROLES).category != "correct"
    assert (
        classify('search(q="x")', [Call("search", {"q": "y"})], NOISY, mode="rotbench", **ROLES).category
        == "content_error"
    )


def test_several_golds_take_the_furthest_stage_like_rotbench():
    tools = [tool("f", "a", "b"), tool("g", "c")]
    golds = [Call("f", {"a": "1"}), Call("g", {"c": "3"})]
    # right tool f with a hallucinated, a redundant and a missing key (R = -1.8) beats the
    # wrong tool (R = -1.5) for RoTBench, whose TS asks only "does any gold use this tool"
    pred = 'f(b="2", zz="9")'
    c = classify(pred, golds, tools, mode="rotbench")
    assert (c.category, c.details["ts"], c.details["pi"], c.details["gold_index"]) == (
        "param_hallucination",
        True,
        False,
        0,
    )
    assert classify(pred, golds, tools, mode="strict").category == "wrong_tool"  # best reward elsewhere


def test_naming_an_undocumented_gold_tool_is_not_a_hallucination():
    tools = [tool("documented", "a")]
    gold = [Call("undocumented", {"x": 1})]
    assert classify("undocumented(x=1)", gold, tools, mode="rotbench").category == "correct"
    assert classify("other(x=1)", gold, tools, mode="rotbench").category == "tool_hallucination"
