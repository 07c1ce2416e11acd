"""Feedback classification for MAE: free text, RoTBench-style turns, sandbox results, honest outputs."""

import pytest

from tl.classify import (
    ALL_RIGHT,
    FEEDBACK_CATEGORIES,
    OTHERS,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    TOOL_CALL_FAILURE,
    TOOL_HALLUCINATION,
    TOOL_INSTABILITY,
    authors_feedback_is_error,
    classify_feedback,
)


@pytest.mark.parametrize(
    "text, category",
    [
        # the paper's examples (Fig. 3 / Table 14) and the original code's error patterns
        ("get_translation_nllb() missing 1 required positional argument: 'max_length'", PARAM_MISSING),
        ("TypeError: search() missing 2 required keyword-only arguments: 'q' and 'n'", PARAM_MISSING),
        ("TypeError: get_weather() got an unexpected keyword argument 'country'", PARAM_HALLUCINATION),
        ("name 'get_wether' is not defined", TOOL_HALLUCINATION),
        ("NameError: name 'search_flights' is not defined", TOOL_HALLUCINATION),
        ('{"error": "Response error."}', TOOL_CALL_FAILURE),
        (
            '{"error": "recent-scan-not-found", "text": "Recently completed scan for example.com not found"}',
            OTHERS,
        ),
        ("TypeError: add() argument 'n' must be int, not str", OTHERS),
        ("400 Client Error: Bad Request for url: https://api.example.com/v1/search", TOOL_INSTABILITY),
        ("503 Server Error: Service Unavailable for url: https://api.example.com/", TOOL_INSTABILITY),
        ("Invalid API call", TOOL_INSTABILITY),
        (
            "ConnectionError: HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded",
            TOOL_INSTABILITY,
        ),
        ('{"error": "connection error."}', TOOL_INSTABILITY),
        ("requests.exceptions.ReadTimeout: Read timed out. (read timeout=10)", TOOL_INSTABILITY),
        (
            'Traceback (most recent call last):\n  File "tool.py", line 12, in run\n    return a / b\n'
            "ZeroDivisionError: division by zero",
            TOOL_CALL_FAILURE,
        ),
        ("KeyError: 'related_searches'", TOOL_CALL_FAILURE),
        ("Object of type SerpResults is not JSON serializable", TOOL_CALL_FAILURE),
        ("Error: the upstream service returned nothing", TOOL_CALL_FAILURE),
        ("{'error': 'Invalid API key'}", OTHERS),  # a Python-dict-ish error payload
        ('{"status": "error", "message": "Language not supported"}', OTHERS),
        # ToolEyes' wrapper (paper Table 14): any reason after it is a failed call
        (
            "The function cannot be executed successfully with the given parameters for the reason: "
            "'related_searches'",
            TOOL_CALL_FAILURE,
        ),
        (
            "The function cannot be executed successfully with the given parameters for the reason: "
            "f() missing 1 required positional argument: 'q'",
            PARAM_MISSING,
        ),
        ('{"Error Message": "Invalid API call. Please retry or visit the documentation"}', TOOL_INSTABILITY),
        ('{"message": "Internal Server Error", "code": 500}', TOOL_INSTABILITY),
        ('{"data": {"error": "not found"}}', OTHERS),
        ("An unexpected error occurred while processing the request.", TOOL_CALL_FAILURE),
        ("Error", TOOL_CALL_FAILURE),
        ("HTTP Error 404: Not Found", TOOL_INSTABILITY),
        ("slice indices must be integers or None or have an __index__ method", TOOL_CALL_FAILURE),
        ("Sorry, this currency pair is not supported.", OTHERS),
        # a Python exception's last traceback line, with or without a message
        ("ValueError", TOOL_CALL_FAILURE),
        ("Exception", TOOL_CALL_FAILURE),
        ("TimeoutError", TOOL_CALL_FAILURE),
        ("SystemExit: 3", TOOL_CALL_FAILURE),
        ("StopIteration", TOOL_CALL_FAILURE),
        ("KeyboardInterrupt", TOOL_CALL_FAILURE),
        ("Error: Boom: it broke", TOOL_CALL_FAILURE),  # how the sandbox words a custom exception class
    ],
)
def test_free_text_errors(text, category):
    assert classify_feedback(text) == category


@pytest.mark.parametrize(
    "text",
    [
        '{"mean": 3.2, "standard error of the mean": 0.1, "n": 40}',  # contains "error", is a success
        "The standard error of the mean is 0.1, so the estimate is precise.",
        "Error handling in Python uses try/except blocks.",
        '{"temp_c": 18, "note": "connection error rates on this line are low"}',
        '{"error": null, "data": [1, 2, 3]}',
        '{"errors": [], "results": ["a"]}',
        "'ja'",
        "[]",
        "",
        '{"agreement": "AGREEMENT", "confidence": "100", "score_tag": "N", '
        '"status": {"code": "0", "msg": "OK", "credits": "1", "remaining_credits": "19989"}}',
        "42",
        '{"status": 200, "message": "OK", "data": {"items": []}}',
        "Warning: rain is expected this afternoon.",
        "No error occurred in the last 24 hours.",
    ],
)
def test_honest_outputs_stay_all_right(text):
    assert classify_feedback(text) == ALL_RIGHT


# Modelled on RoTBench Data/Third_Turn/clean.json (not among ../shared/data): the function turns
# of a few records, with what MAE should make of each.
ROTBENCH_THIRD_TURN = [
    {
        "id": "Turn 3: What is the translation of the English phrase 'See you later' in Japanese?",
        "conversations": [
            {
                "from": "assistant",
                "value": "Thought:\nAction: get_translation_nllb\n"
                'Action Input: {"input_text": "See you later", "tgt_lang": "ja", "src_lang": "en"}',
            },
            {
                "from": "function",
                "value": "get_translation_nllb() missing 1 required positional argument: 'max_length'",
                "expect": PARAM_MISSING,
            },
            {
                "from": "assistant",
                "value": "Thought:\nAction: get_translation_nllb\n"
                'Action Input: {"input_text": "See you later", "tgt_lang": "ja", "src_lang": "en", '
                '"max_length": "100"}',
            },
            {"from": "function", "value": "'ja'", "expect": ALL_RIGHT},
        ],
    },
    {
        "id": "Turn 3: Please perform a sentiment analysis on the following statement ...",
        "conversations": [
            {
                "from": "assistant",
                "value": 'Thought:\nAction: sentiment_analysis\nAction Input: {"txt": "The food was cold."}',
            },
            {"from": "function", "value": '{"error": "connection error."}', "expect": TOOL_INSTABILITY},
            {
                "from": "assistant",
                "value": 'Thought:\nAction: sentiment_analysis\nAction Input: {"txt": "The food was cold."}',
            },
            {
                "from": "function",
                "value": '{"agreement": "AGREEMENT", "irony": "NONIRONIC", "score_tag": "N", '
                '"status": {"code": "0", "msg": "OK"}}',
                "expect": ALL_RIGHT,
            },
        ],
    },
    {
        "id": "Turn 3: Find me a hotel in Paris",
        "conversations": [
            {"from": "assistant", "value": 'Thought:\nAction: search_hotel\nAction Input: {"city": "Paris"}'},
            {"from": "function", "value": "name 'search_hotel' is not defined", "expect": TOOL_HALLUCINATION},
            {
                "from": "assistant",
                "value": 'Thought:\nAction: hotels_search\nAction Input: {"city": "Paris", "stars": "4"}',
            },
            {
                "from": "function",
                "value": "hotels_search() got an unexpected keyword argument 'stars'",
                "expect": PARAM_HALLUCINATION,
            },
        ],
    },
]


def test_rotbench_third_turn_style_records():
    # the function turns only: they carry the feedback and what MAE should make of it
    turns = [t for r in ROTBENCH_THIRD_TURN for t in r["conversations"] if t["from"] == "function"]
    assert [classify_feedback(t["value"]) for t in turns] == [t["expect"] for t in turns]


def test_sandbox_results_and_tool_messages():
    succeeded = {"ok": True, "category": "all_right", "message": "", "output": {"x": 1}}
    assert classify_feedback(succeeded) == ALL_RIGHT
    # a valid category is trusted, whatever the message says
    categorized = {"ok": False, "category": "param_missing", "message": "whatever"}
    assert classify_feedback(categorized) == PARAM_MISSING
    assert classify_feedback({"ok": True, "output": "error everywhere"}) == ALL_RIGHT  # trust ok
    # without a category, a failure is read from its message
    unexpected = {"ok": False, "message": "f() got an unexpected keyword argument 'z'"}
    assert classify_feedback(unexpected) == PARAM_HALLUCINATION
    assert classify_feedback({"ok": False, "message": "boom"}) == TOOL_CALL_FAILURE
    message = {"role": "tool", "content": "ignored", "result": {"ok": False, "category": "tool_instability"}}
    assert classify_feedback(message) == TOOL_INSTABILITY
    assert classify_feedback({"role": "tool", "content": "name 'x' is not defined"}) == TOOL_HALLUCINATION
    assert classify_feedback(None) == ALL_RIGHT
    assert set(FEEDBACK_CATEGORIES) == {
        ALL_RIGHT,
        TOOL_INSTABILITY,
        TOOL_CALL_FAILURE,
        TOOL_HALLUCINATION,
        PARAM_HALLUCINATION,
        PARAM_MISSING,
        OTHERS,
    }


@pytest.mark.parametrize(
    "text, masked",
    [
        ("NameError: name 'x' is not defined", True),
        ('{"error": "Response error."}', True),
        ('{"mean": 3.2, "standard error of the mean": 0.1}', True),  # their rule reads any "error"
        ("Sorry, this currency pair is not supported.", True),
        ("slice indices must be integers or None or have an __index__ method", True),
        ("KeyError: 'related_searches'", True),
        ('{"temp_c": 18}', False),
        ("timed out", False),  # not in their list
    ],
)
def test_authors_mae_rule(text, masked):
    assert authors_feedback_is_error(text) is masked
