"""The error taxonomy, shared by MAE (feedback), PPO (reward) and evaluation (TS/PI/CF, Table 1);
the categories and their order: docs/ARCHITECTURE.md, "Error taxonomy" (paper Sec. 3.3).

param_hallucination = a key the tool does not declare nor gold use; param_missing = a gold key not
predicted; param_redundant = declared, not in gold (all flags kept). Values, by `mode`: "strict" =
JSON equality, 1 == 1.0, booleans not numbers; "rotbench" = its evaluate.py: Python `==`, a gold
"None" unchecked, nor the values of `unchecked_tools`; "bfcl" = gold lists of acceptable values
judged by `bfcl_value_ok`, "" = may be omitted unless required, a key outside the schema hallucinated.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from dataclasses import dataclass

from tl.calls import Call, normalize_tools
from tl.parse import Parsed, parse, parse_literal

# Call categories (what a predicted call is, against gold)
CORRECT = "correct"
UNPARSABLE = "unparsable"
NO_CALL = "no_call"
TOOL_HALLUCINATION = "tool_hallucination"
WRONG_TOOL = "wrong_tool"
PARAM_HALLUCINATION = "param_hallucination"
PARAM_REDUNDANT = "param_redundant"
PARAM_MISSING = "param_missing"
CONTENT_ERROR = "content_error"
CALL_CATEGORIES = (
    CORRECT,
    UNPARSABLE,
    NO_CALL,
    TOOL_HALLUCINATION,
    WRONG_TOOL,
    PARAM_HALLUCINATION,
    PARAM_REDUNDANT,
    PARAM_MISSING,
    CONTENT_ERROR,
)
# Feedback categories (what a tool's reply says); three call categories are feedback categories too
ALL_RIGHT = "all_right"
TOOL_INSTABILITY = "tool_instability"
TOOL_CALL_FAILURE = "tool_call_failure"
OTHERS = "others"
FEEDBACK_CATEGORIES = (
    ALL_RIGHT,
    TOOL_INSTABILITY,
    TOOL_CALL_FAILURE,
    TOOL_HALLUCINATION,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    OTHERS,
)
MODES = ("strict", "rotbench", "bfcl")
PARAM_CATEGORIES = (PARAM_HALLUCINATION, PARAM_MISSING, PARAM_REDUNDANT)  # reporting precedence
# Breaks ties between categories of equal reward: the earlier, the worse.
_SEVERITY_ORDER = (
    UNPARSABLE,
    NO_CALL,
    TOOL_HALLUCINATION,
    WRONG_TOOL,
    *PARAM_CATEGORIES,
    CONTENT_ERROR,
    CORRECT,
)
_SEVERITY = {category: rank for rank, category in enumerate(_SEVERITY_ORDER)}
# RoTBench tools whose argument values go unchecked, by name; rotbench.role_rules adds the roles by position.
ROTBENCH_UNCHECKED_TOOLS = ("finish", "ask_to_user")
# Python's built-in exception classes whose names end in neither Error nor Exception.
_EXCEPTION_NAMES = sorted(
    n
    for n, v in vars(builtins).items()
    if isinstance(v, type)
    and issubclass(v, BaseException)
    and not n.endswith(("Error", "Exception", "Warning"))
)


@dataclass(frozen=True)
class Classification:
    """category: one of CALL_CATEGORIES; details: see `_details`."""

    category: str
    details: dict


@dataclass(frozen=True)
class CallsClassification:
    """Parallel gold: the worst category, details (matches = (gold, predicted index or None) pairs,
    extra_calls = unmatched predictions) and one Classification per gold call."""

    category: str
    details: dict
    per_call: list


# ----------------------------------------------------------------------------- reward (Sec. 3.3)
def param_penalty(hallucinated: bool, redundant: bool, missing: bool) -> float:
    """Paper Sec. 3.3, R_p = -0.8·[hallucinated] - 0.5·[redundant] - 0.5·[missing]."""
    return round(-0.8 * hallucinated - 0.5 * redundant - 0.5 * missing, 6)


_FIXED_REWARD = {
    CORRECT: 1.0,
    CONTENT_ERROR: -0.25,
    WRONG_TOOL: -1.5,
    TOOL_HALLUCINATION: -2.0,
    UNPARSABLE: -2.0,
    NO_CALL: -2.0,
}


def call_reward(c: Classification) -> float:
    """Paper Sec. 3.3, R(t): -2 unparsable (or no call when one was expected), -2 tool
    hallucination, -1.5 wrong tool, R_p for parameter issues, -0.25 content, +1 correct."""
    if c.category in _FIXED_REWARD:
        return _FIXED_REWARD[c.category]
    return param_penalty(*(bool(c.details[k]) for k in ("hallucinated", "redundant", "missing")))


# ----------------------------------------------------------------------------- one call
_NAME_PIECE = re.compile(
    r"[._\-\s]*(?:[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^._\-\sA-Za-z\d]+)|[._\-\s]+$"
)


def split_name(name: str) -> list[str]:
    """Table 1's default name tokenizer: "getHTTPResponse_v2" -> ["get", "HTTP", "Response", "_v", "2"]."""
    return _NAME_PIECE.findall(name)


def strict_equal(pred, gold) -> bool:
    """JSON equality where ints and floats compare by value; booleans are not numbers."""
    both_numbers = isinstance(pred, (int, float)) and isinstance(gold, (int, float))
    if both_numbers and bool not in (type(pred), type(gold)):
        return pred == gold
    if isinstance(pred, list) and isinstance(gold, list):
        return len(pred) == len(gold) and all(map(strict_equal, pred, gold))
    if isinstance(pred, dict) and isinstance(gold, dict):
        return pred.keys() == gold.keys() and all(strict_equal(pred[k], gold[k]) for k in gold)
    return type(pred) is type(gold) and pred == gold


def _details(mode, pred_name=None, gold_name=None, **extra) -> dict:
    """A Classification's details: names, the flagged keys, the paper's TS / PI / CF, Table 1's name
    statistics (wrong_tool only), the extra calls' names, which gold was used."""
    return {
        "predicted_name": pred_name,
        "gold_name": gold_name,
        "hallucinated": [],
        "redundant": [],
        "missing": [],
        "wrong_values": [],
        "ts": False,
        "pi": False,
        "cf": False,
        "first_token_differs": None,
        "shares_prefix": None,
        "common_prefix_tokens": None,
        "extra_calls": [],
        "gold_index": None,
        "parse_error": None,
        "mode": mode,
        **extra,
    }


def _classify_one(
    pred: Call,
    gold: Call,
    tools: dict | None,
    mode: str,
    tokenize,
    bfcl_value_ok=None,
    unchecked_tools=ROTBENCH_UNCHECKED_TOOLS,
    aliases=None,
) -> Classification:
    """One predicted call against one gold call, stage by stage: the tool (TS), the keys (PI), the values
    (CF); the first stage that fails decides the category."""
    d = _details(mode, pred.name, gold.name)
    if aliases and aliases.get(pred.name) == gold.name:
        pred = Call(gold.name, pred.arguments)  # e.g. RoTBench: "finish" names the finish-role tool
    # Naming the gold tool is never a hallucination, even when the tool list does not document
    # it (ToolAlpaca's gold names a few undocumented functions; RoTBench's TS compares names only).
    if tools is not None and pred.name not in tools and pred.name != gold.name:
        return Classification(TOOL_HALLUCINATION, d)
    if pred.name != gold.name:
        # Table 1: "the first token is already wrong" vs "shares a (token) prefix with the right one"
        pred_tokens = list(tokenize(pred.name))
        gold_tokens = list(tokenize(gold.name))
        common = len(os.path.commonprefix([pred_tokens, gold_tokens]))
        d.update(first_token_differs=common == 0, shares_prefix=common > 0, common_prefix_tokens=common)
        return Classification(WRONG_TOOL, d)
    d["ts"] = True
    params = ((tools or {}).get(gold.name) or {}).get("parameters", {})
    props = params.get("properties", {})
    args = pred.arguments
    if mode == "bfcl":
        # BFCL's checker: a key outside the schema is unexpected, a required key never optional
        bad = next((k for k, v in gold.arguments.items() if not isinstance(v, list)), None)
        if bad is not None:
            raise ValueError(
                f"mode='bfcl': gold {gold.name}.{bad} must be a list of acceptable values; "
                f"found {gold.arguments[bad]!r:.100}"
            )
        required = params.get("required", [])
        # an optional gold key is wanted unless "" (omitted) is among its acceptable values
        not_omissible = [k for k, v in gold.arguments.items() if "" not in v and k not in required]
        wanted = [*required, *not_omissible]
        d["hallucinated"] = [k for k in args if k not in props]
    else:
        wanted = list(gold.arguments)
        d["hallucinated"] = [k for k in args if k not in props and k not in gold.arguments]
    d["redundant"] = [k for k in args if k in props and k not in gold.arguments]
    d["missing"] = [k for k in wanted if k not in args]
    for category, key in zip(PARAM_CATEGORIES, ("hallucinated", "missing", "redundant")):
        if d[key]:
            return Classification(category, d)
    d["pi"] = True

    def value_ok(k):
        predicted, expected = args[k], gold.arguments[k]
        if mode == "rotbench":
            return expected == "None" or predicted == expected  # a gold "None" is not checked
        if mode == "strict":
            return strict_equal(predicted, expected)
        return bfcl_value_ok(predicted, expected, props.get(k) or {})

    if not (mode == "rotbench" and gold.name in unchecked_tools):
        d["wrong_values"] = [k for k in gold.arguments if k in args and not value_ok(k)]
    if d["wrong_values"]:
        return Classification(CONTENT_ERROR, d)
    d["cf"] = True
    return Classification(CORRECT, d)


def _unexpected_call(pred: Call, tools: dict | None, mode: str) -> Classification:
    """A call where gold expects none: the right 'tool' was no tool at all."""
    known = tools is None or pred.name in tools
    return Classification(WRONG_TOOL if known else TOOL_HALLUCINATION, _details(mode, pred.name))


def _worst(results: list[Classification]) -> Classification:
    return min(results, key=lambda c: (call_reward(c), _SEVERITY[c.category]))


def _prepare(pred, tools, mode, tokenize):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; found {mode!r}")
    parsed = pred if isinstance(pred, Parsed) else parse(pred)
    if tools is None:
        by_name = None
    else:
        # BFCL's checker reads its own schemas' type words (float, tuple), which normalisation merges.
        schemas = tools if mode == "bfcl" else normalize_tools(tools)
        by_name = {t["name"]: t for t in schemas}
    return parsed, by_name, tokenize or split_name


def _need_bfcl_rules(mode: str, bfcl_value_ok) -> None:
    if mode == "bfcl" and bfcl_value_ok is None:
        raise ValueError(
            "mode='bfcl' judges values with BFCL's checker rules: pass bfcl_value_ok=tasks.bfcl.value_ok"
        )


def classify(
    pred,
    gold,
    tools,
    *,
    mode: str = "strict",
    tokenize=None,
    bfcl_value_ok=None,
    unchecked_tools=ROTBENCH_UNCHECKED_TOOLS,
    aliases=None,
) -> Classification:
    """Model output (text or `Parsed`) against `gold`: a Call (or dict), a list of acceptable Calls,
    or None (no call expected). `tools`: None skips the tool-hallucination check. `tokenize`: name
    -> tokens for the wrong-tool statistics. RoTBench's role rules: `unchecked_tools`, `aliases` =
    {predicted name: gold name}; of several golds it takes the one reaching the furthest stage (its
    "any answer" rule), other modes the best reward. Extra calls make the output the worst."""
    _need_bfcl_rules(mode, bfcl_value_ok)
    parsed, tools, tokenize = _prepare(pred, tools, mode, tokenize)
    if parsed.kind == "error":
        return Classification(UNPARSABLE, _details(mode, parse_error=parsed.error))
    golds = None
    if gold is not None:
        acceptable = gold if isinstance(gold, (list, tuple)) else [gold]
        golds = [Call.from_dict(g) for g in acceptable]
    if golds == []:
        raise ValueError("gold must be a Call, a non-empty list of acceptable Calls, or None; found []")
    calls = parsed.calls
    if not calls:
        if gold is None:
            return Classification(CORRECT, _details(mode, ts=True, pi=True, cf=True))
        return Classification(NO_CALL, _details(mode, gold_name=golds[0].name))
    if gold is None:
        c = _unexpected_call(calls[0], tools, mode)
    else:
        results = [
            _classify_one(calls[0], g, tools, mode, tokenize, bfcl_value_ok, unchecked_tools, aliases)
            for g in golds
        ]
        keep = range(len(results))
        if mode == "rotbench":
            # RoTBench's evaluate.py CF loop also deletes a gold's "None" keys from the prediction: after the
            # first gold with the prediction's tool and keys that holds one, no later such gold matches.
            same = [i for i in keep if results[i].details["pi"]]
            first = next((i for i in same if "None" in golds[i].arguments.values()), len(results))
            keep = [i for i in keep if i <= first or i not in same]

        def rank(i):
            """RoTBench: the furthest stage first (its "any answer" rule); then the best reward, then the
            earliest gold."""
            d = results[i].details
            stages = (d["cf"], d["pi"], d["ts"]) if mode == "rotbench" else ()
            return (*stages, call_reward(results[i]), -i)

        best = max(keep, key=rank)
        c = results[best]
        c.details["gold_index"] = best
    if len(calls) > 1:  # extra calls: each an unexpected call, the output the worst
        worst = _worst([c, *(_unexpected_call(p, tools, mode) for p in calls[1:])])
        c = Classification(worst.category, {**c.details, "ts": False, "pi": False, "cf": False})
    c.details["extra_calls"] = [p.name for p in calls[1:]]
    return c


def classify_calls(
    pred, gold_calls, tools, *, mode: str = "strict", tokenize=None, bfcl_value_ok=None
) -> CallsClassification:
    """Parallel gold (BFCL): each gold call takes the first free prediction that is right (BFCL's
    checker), the rest are paired by reward; unmatched gold calls are `no_call`, unmatched
    predictions unexpected calls, the overall category the worst."""
    parsed, tools, tokenize = _prepare(pred, tools, mode, tokenize)
    golds = [Call.from_dict(g) for g in gold_calls]
    if parsed.kind == "error":
        per = [
            Classification(UNPARSABLE, _details(mode, gold_name=g.name, parse_error=parsed.error))
            for g in golds
        ]
        return CallsClassification(
            UNPARSABLE, {"matches": [], "extra_calls": [], "parse_error": parsed.error}, per
        )
    preds = parsed.calls
    _need_bfcl_rules(mode, bfcl_value_ok)
    pairs = {
        (i, j): _classify_one(p, g, tools, mode, tokenize, bfcl_value_ok)
        for i, g in enumerate(golds)
        for j, p in enumerate(preds)
    }
    matched: dict[int, int] = {}
    for i in range(len(golds)):  # BFCL's rule first, then the rest by reward (for error analysis)
        free = [j for j in range(len(preds)) if j not in matched.values()]
        right = [j for j in free if pairs[i, j].category == CORRECT]
        if right:
            matched[i] = right[0]
    for i, j in sorted(pairs, key=lambda ij: (-call_reward(pairs[ij]), ij)):
        if i not in matched and j not in matched.values():
            matched[i] = j
    per = []
    for i, g in enumerate(golds):
        if i in matched:
            per.append(pairs[i, matched[i]])
        else:
            per.append(Classification(NO_CALL, _details(mode, gold_name=g.name)))
    extra = [j for j in range(len(preds)) if j not in matched.values()]
    everything = per + [_unexpected_call(preds[j], tools, mode) for j in extra]
    if not everything:  # no gold calls and no predicted calls
        return CallsClassification(CORRECT, {"matches": [], "extra_calls": []}, [])
    details = {
        "matches": [(i, matched.get(i)) for i in range(len(golds))],
        "extra_calls": extra,
        "n_pred_calls": len(preds),
        "n_gold_calls": len(golds),
    }
    return CallsClassification(_worst(everything).category, details, per)


# ----------------------------------------------------------------------------- feedback (MAE)
# Ordered: the first pattern that matches the error text decides. Specific Python messages
# come first, so "TypeError: f() got an unexpected keyword argument 'x'" is a parameter
# hallucination, not a generic exception.
_FEEDBACK_PATTERNS = [
    (
        PARAM_MISSING,
        r"missing \d+ required (?:positional |keyword-only )?arguments?"
        r"|missing required (?:parameter|argument|field)"
        r"|required (?:parameter|argument) \S+ (?:is )?missing",
    ),
    (
        PARAM_HALLUCINATION,
        r"got an unexpected keyword argument|unexpected (?:keyword )?(?:argument|parameter)"
        r"|takes \d+ positional arguments? but \d+ (?:were|was) given|takes no (?:keyword )?arguments",
    ),
    (
        TOOL_HALLUCINATION,
        r"name '[^']*' is not defined"
        r"|\b(?:unknown|invalid|nonexistent|non-existent) (?:tool|function|action)\b"
        r"|no such (?:tool|function)|module '[^']*' has no attribute",
    ),
    # a wrong argument type
    (OTHERS, r"argument '[^']*' must be [\w. ]+, not \w+|must be (?:a |an )?\w+, not \w+"),
    (
        TOOL_INSTABILITY,
        r"connection ?error|connection (?:refused|reset|aborted)|timed out|\btimeout\b"
        r"|max retries exceeded"
        r"|\b[45]\d\d (?:client|server) error|\bhttp ?error:? ?[45]\d\d\b|internal server error"
        r"|invalid api call|service unavailable|too many requests"
        r"|rate limit|bad gateway|temporary failure in name resolution|name or service not known"
        r"|\bhttperror\b|status code:? ?[45]\d\d\b|network is unreachable",
    ),
    (
        TOOL_CALL_FAILURE,
        r"response error|traceback \(most recent call last\)|is not json serializable"
        r"|slice indices must be integers"
        # A Python exception's last traceback line (`ValueError: x`, a bare `SystemExit`),
        # at the start of the text only: "Error handling in Python ..." stays all right.
        r"|\A\s*(?:[\w.]*(?:error|exception)|error|" + "|".join(_EXCEPTION_NAMES) + r")\s*(?:[:!\-]|\Z)"
        r"|\A\s*(?:an? )?(?:unexpected |unknown |internal )?error (?:occurred|occured|happened|while)",
    ),
    # the authors' pattern list ("Sorry, this currency pair is not supported.")
    (OTHERS, r"\bnot supported\b"),
]
_FEEDBACK_RULES = [(category, re.compile(pattern, re.I)) for category, pattern in _FEEDBACK_PATTERNS]

# ToolEyes wraps every failed call in this sentence (paper Table 14); whatever reason follows, the call
# failed.
_TOOLEYES_FAILURE = re.compile(
    r"^\s*the function cannot be executed successfully with the given parameters"
    r"(?: for the reason)?:?\s*",
    re.I,
)
_ERROR_KEYS = ("error", "errors", "errormessage", "errmsg", "err", "exception", "fault")


def _error_of_payload(obj, depth: int = 0):
    """The error part of a structured output, or None on success: an error field (keys compared on
    their letters) at depth <= 3, a failed status, or an HTTP error code."""
    if not isinstance(obj, dict) or depth > 3:
        return None
    for k, v in obj.items():
        if isinstance(k, str) and re.sub(r"[^a-z]", "", k.lower()) in _ERROR_KEYS and v:
            return v
    failed_status = str(obj.get("status", "")).lower() in ("error", "fail", "failed", "failure")
    if failed_status or obj.get("success") is False:
        return obj.get("message") or obj.get("msg") or obj
    code = next((obj[k] for k in ("code", "status", "status_code", "statusCode") if k in obj), None)
    is_code = isinstance(code, (int, str)) and not isinstance(code, bool)
    if is_code and re.fullmatch(r"[45]\d\d", str(code)):  # an HTTP client or server error
        return obj.get("message") or obj.get("msg") or f"{code} Server Error"
    for value in obj.values():  # depth-first through nested objects
        err = _error_of_payload(value, depth + 1)
        if err is not None:
            return err
    return None


def _match_rules(text: str) -> str | None:
    return next((cat for cat, rx in _FEEDBACK_RULES if rx.search(text)), None)


def _classify_feedback_text(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return ALL_RIGHT
    if wrapped := _TOOLEYES_FAILURE.match(stripped):
        return _match_rules(stripped[wrapped.end() :]) or TOOL_CALL_FAILURE
    if stripped[0] in "{[\"'":
        try:
            value = parse_literal(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict):
            err = _error_of_payload(value)
            if err is None:
                return ALL_RIGHT  # a success payload, whatever words its values contain
            err_text = err if isinstance(err, str) else json.dumps(err, ensure_ascii=False)
            return _match_rules(err_text) or OTHERS
        if isinstance(value, str):
            return _classify_feedback_text(value)
        if value is not None:
            return ALL_RIGHT  # a list or number
    # Free text: known error messages anywhere; a generic exception only at the start, so an
    # honest output such as "the standard error of the mean is 0.1" stays all right.
    return _match_rules(stripped) or ALL_RIGHT


def classify_feedback(text_or_result) -> str:
    """Feedback after a call -> one of FEEDBACK_CATEGORIES (paper Fig. 3 / Table 14): free text, the
    sandbox's `{"ok", "category", "message"}` (a valid category is trusted) or a tool message dict.
    A structured output is an error only through `_error_of_payload` (`others` if no rule matches)."""
    x = text_or_result
    if x is None:
        return ALL_RIGHT
    if isinstance(x, dict):
        if x.get("category") in FEEDBACK_CATEGORIES:
            return x["category"]
        if isinstance(x.get("ok"), bool):
            if x["ok"]:
                return ALL_RIGHT
            return _match_rules(str(x.get("message") or "")) or TOOL_CALL_FAILURE
        if isinstance(x.get("result"), dict):
            return classify_feedback(x["result"])
        if "content" in x and "role" in x:
            return classify_feedback(x["content"])
        x = json.dumps(x, ensure_ascii=False)
    if not isinstance(x, str):
        x = json.dumps(x, ensure_ascii=False, default=str)
    return _classify_feedback_text(x)


def feedback_categories(messages: list[dict]) -> dict[int, str | None]:
    """{assistant message index: the feedback category of the tool message(s) right after its
    call(s), the first erroneous one deciding; None if none follows}. MAE reads the feedback
    *text*, as the paper does."""
    out = {}
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or not (m.get("tool_call") or m.get("tool_calls")):
            continue
        category = None
        j = i + 1  # the tool messages that follow the call
        while j < len(messages) and messages[j].get("role") in ("tool", "function"):
            if category in (None, ALL_RIGHT):
                category = classify_feedback(str(messages[j].get("content", "")))
            j += 1
        out[i] = category
    return out


# The authors' MAE rule (code/mae/mae.py): after stripping everything but letters and digits and
# lower-casing, a feedback is an error if it contains one of these (so, in effect, "error").
AUTHORS_ERROR_PATTERNS = (
    "is not defined",
    "positional argument",
    "unexpected keyword",
    "'related_searches'",
    "ConnectionError",
    '"error":',
    "not supported",
    "Invalid API call",
    "Response error",
    "Object of type SerpResults is not JSON serializable",
    "400 Client Error",
    "'error'",
    "slice indices must be integers or None or have an __index__ method",
    "connection error",
)


def _letters_and_digits(text: str) -> str:
    return re.sub(r"[^\u4e00-\u9fa5a-zA-Z0-9]", "", text).lower()


def authors_feedback_is_error(text: str) -> bool:
    """`--mae_rule authors`: the authors' substring test on the stripped, lower-cased feedback."""
    flat = _letters_and_digits(str(text))
    return any(_letters_and_digits(p) in flat for p in AUTHORS_ERROR_PATTERNS)
