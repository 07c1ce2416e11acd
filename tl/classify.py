"""The error taxonomy, shared by MAE (feedback), PPO (reward) and evaluation (TS/PI/CF, Table 1).

Call classification, for one predicted call against a gold call and the available tools. The
first category that applies is reported (paper Sec. 3.3):
  unparsable / no_call -> tool_hallucination (name not among the tools) -> wrong_tool ->
  param_hallucination > param_missing > param_redundant (all three flags kept in details) ->
  content_error (right tool and keys, a value differs) -> correct.
Parameter flags (the original code's): hallucinated = a predicted key the gold tool does not
declare (and gold does not use); redundant = declared, not in gold; missing = a gold key not predicted.

More calls than the gold expects: the first is scored against the gold, each further one as an
unexpected call (wrong_tool; tool_hallucination if its tool is not offered), the output as the
worst, with TS = PI = CF = False (RoTBench's evaluate.py cannot read two Action blocks, BFCL
rejects a wrong number of calls). So such an output's R(t) is -2 when any call names a tool that
is not offered, else at most -1.5, never +1.

Value comparison, by `mode`:
- "strict": JSON equality; the only normalisation is that ints and floats compare by value
  (1 == 1.0). Booleans are not numbers (true != 1); strings are compared exactly.
- "rotbench": RoTBench's evaluate.py: values compared with Python `==` (so "1" != 1, but true ==
  1), a gold value "None" not checked (the key must be there), nor any value of the
  `unchecked_tools` (finish / ask_to_user, tasks.rotbench.role_rules).
- "bfcl": gold values are lists of acceptable values (BFCL possible_answer) judged as BFCL's own
  checker does (tasks.bfcl.value_ok); "" = the key may be omitted unless the schema
  requires it; a key the schema does not declare is hallucinated even if the answer lists it.

Gold forms: a Call (or {"name", "arguments"} dict); a list of Calls = several acceptable answers
(RoTBench), scored against the best-scoring one; None = no call expected: a plain answer is
correct, a call unexpected. `classify_calls` takes parallel gold.
"""
from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass

from tl.parse import Parsed, parse, parse_literal
from tl.calls import Call, normalize_tools

CORRECT, UNPARSABLE, NO_CALL = "correct", "unparsable", "no_call"
TOOL_HALLUCINATION, WRONG_TOOL = "tool_hallucination", "wrong_tool"
PARAM_HALLUCINATION, PARAM_REDUNDANT, PARAM_MISSING = "param_hallucination", "param_redundant", "param_missing"
CONTENT_ERROR = "content_error"
CALL_CATEGORIES = (CORRECT, UNPARSABLE, NO_CALL, TOOL_HALLUCINATION, WRONG_TOOL,
                   PARAM_HALLUCINATION, PARAM_REDUNDANT, PARAM_MISSING, CONTENT_ERROR)
ALL_RIGHT, TOOL_INSTABILITY, TOOL_CALL_FAILURE, OTHERS = "all_right", "tool_instability", "tool_call_failure", "others"
FEEDBACK_CATEGORIES = (ALL_RIGHT, TOOL_INSTABILITY, TOOL_CALL_FAILURE, TOOL_HALLUCINATION,
                       PARAM_HALLUCINATION, PARAM_MISSING, OTHERS)
MODES = ("strict", "rotbench", "bfcl")
PARAM_CATEGORIES = (PARAM_HALLUCINATION, PARAM_MISSING, PARAM_REDUNDANT)  # reporting precedence
ROTBENCH_UNCHECKED_TOOLS = ("finish", "ask_to_user")  # by name; rotbench.role_rules adds the roles by position
# Python's built-in exception classes whose names end in neither Error nor Exception.
_EXCEPTION_NAMES = sorted(n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
                          and not n.endswith(("Error", "Exception", "Warning")))


@dataclass(frozen=True)
class Classification:
    """category: one of CALL_CATEGORIES. details: predicted_name, gold_name, hallucinated,
    redundant, missing, wrong_values (key lists), ts / pi / cf (the paper's TS, PI, CF for this
    item), first_token_differs / shares_prefix / common_prefix_tokens (wrong_tool only, else
    None), extra_calls, gold_index (which acceptable gold was used), parse_error, mode."""

    category: str
    details: dict


@dataclass(frozen=True)
class CallsClassification:
    """Parallel gold: the overall category (the worst per-call result), details (matches as
    (gold index, predicted index or None), extra_calls = unmatched predicted indices) and one
    Classification per gold call, in gold order."""

    category: str
    details: dict
    per_call: list


# ----------------------------------------------------------------------------- reward (Sec. 3.3)


def param_penalty(hallucinated: bool, redundant: bool, missing: bool) -> float:
    """Paper Sec. 3.3, R_p = -0.8·[hallucinated] - 0.5·[redundant] - 0.5·[missing]
    (so -0.5, -0.8, -1.0, -1.3 or -1.8)."""
    return round(-0.8 * hallucinated - 0.5 * redundant - 0.5 * missing, 6)


_FIXED_REWARD = {CORRECT: 1.0, CONTENT_ERROR: -0.25, WRONG_TOOL: -1.5,
                 TOOL_HALLUCINATION: -2.0, UNPARSABLE: -2.0, NO_CALL: -2.0}


def call_reward(c: Classification) -> float:
    """Paper Sec. 3.3, R(t): -2 unparsable (and no call when one was expected), -2 tool
    hallucination, -1.5 wrong tool, R_p for parameter issues, -0.25 content, +1 correct."""
    if c.category in _FIXED_REWARD:
        return _FIXED_REWARD[c.category]
    d = c.details
    return param_penalty(bool(d["hallucinated"]), bool(d["redundant"]), bool(d["missing"]))


# ----------------------------------------------------------------------------- names (Table 1)

_NAME_PIECE = re.compile(r"[._\-\s]*(?:[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^._\-\sA-Za-z\d]+)|[._\-\s]+$")


def split_name(name: str) -> list[str]:
    """Default name tokenizer for Table 1's statistics: word pieces split at `_`, `.`, `-`,
    camelCase and digit boundaries, each separator kept on the piece after it, so the pieces
    join back to the name: "getHTTPResponse_v2" -> ["get", "HTTP", "Response", "_v", "2"]."""
    return _NAME_PIECE.findall(name)


def _name_token_stats(pred: str, gold: str, tokenize) -> dict:
    p, g = list(tokenize(pred)), list(tokenize(gold))
    common = 0
    while common < min(len(p), len(g)) and p[common] == g[common]:
        common += 1
    # Table 1: "the first token is already wrong" vs "shares a (token) prefix with the right one".
    return {"first_token_differs": common == 0, "shares_prefix": common > 0, "common_prefix_tokens": common}


# ----------------------------------------------------------------------------- values


def strict_equal(pred, gold) -> bool:
    """JSON equality where ints and floats compare by value; booleans are not numbers."""
    if isinstance(pred, bool) or isinstance(gold, bool):
        return type(pred) is type(gold) and pred == gold
    if isinstance(pred, (int, float)) and isinstance(gold, (int, float)):
        return pred == gold
    if isinstance(pred, list) and isinstance(gold, list):
        return len(pred) == len(gold) and all(strict_equal(a, b) for a, b in zip(pred, gold))
    if isinstance(pred, dict) and isinstance(gold, dict):
        return pred.keys() == gold.keys() and all(strict_equal(pred[k], gold[k]) for k in gold)
    return type(pred) is type(gold) and pred == gold


def _value_ok(pred_value, gold_value, mode: str, prop: dict | None, bfcl_value_ok) -> bool:
    if mode == "strict":
        return strict_equal(pred_value, gold_value)
    if mode == "rotbench":
        return gold_value == "None" or pred_value == gold_value
    return bfcl_value_ok(pred_value, gold_value, prop or {})


# ----------------------------------------------------------------------------- one call


def _details(mode, pred_name=None, gold_name=None, **extra) -> dict:
    d = {"predicted_name": pred_name, "gold_name": gold_name, "hallucinated": [], "redundant": [],
         "missing": [], "wrong_values": [], "ts": False, "pi": False, "cf": False,
         "first_token_differs": None, "shares_prefix": None, "common_prefix_tokens": None,
         "extra_calls": [], "gold_index": None, "parse_error": None, "mode": mode}
    d.update(extra)
    return d


def _classify_one(pred: Call, gold: Call, tools: dict | None, mode: str, tokenize, bfcl_value_ok=None,
                  unchecked_tools=ROTBENCH_UNCHECKED_TOOLS, aliases=None) -> Classification:
    d = _details(mode, pred.name, gold.name)
    if aliases and aliases.get(pred.name) == gold.name:
        pred = Call(gold.name, pred.arguments)  # e.g. RoTBench: "finish" names the finish-role tool
    # Naming the gold tool is never a hallucination, even when the tool list does not document
    # it (ToolAlpaca's gold names a few undocumented functions; RoTBench's TS compares names only).
    if tools is not None and pred.name not in tools and pred.name != gold.name:
        return Classification(TOOL_HALLUCINATION, d)
    if pred.name != gold.name:
        d.update(_name_token_stats(pred.name, gold.name, tokenize))
        return Classification(WRONG_TOOL, d)
    d["ts"] = True
    params = ((tools or {}).get(gold.name) or {}).get("parameters", {})
    props = params.get("properties", {})
    if mode == "bfcl":  # BFCL's checker: a key outside the schema is unexpected, a required key never optional
        bad = next((k for k, v in gold.arguments.items() if not isinstance(v, list)), None)
        if bad is not None:
            raise ValueError(f"mode='bfcl': gold {gold.name}.{bad} must be a list of acceptable values; found {gold.arguments[bad]!r:.100}")
        required = params.get("required", [])
        wanted = [*required, *(k for k, v in gold.arguments.items() if "" not in v and k not in required)]
        d["hallucinated"] = [k for k in pred.arguments if k not in props]
    else:
        wanted = list(gold.arguments)
        d["hallucinated"] = [k for k in pred.arguments if k not in props and k not in gold.arguments]
    d["redundant"] = [k for k in pred.arguments if k in props and k not in gold.arguments]
    d["missing"] = [k for k in wanted if k not in pred.arguments]
    for category, key in zip(PARAM_CATEGORIES, ("hallucinated", "missing", "redundant")):
        if d[key]:
            return Classification(category, d)
    d["pi"] = True
    if not (mode == "rotbench" and gold.name in unchecked_tools):
        d["wrong_values"] = [k for k in gold.arguments if k in pred.arguments
                             and not _value_ok(pred.arguments[k], gold.arguments[k], mode, props.get(k), bfcl_value_ok)]
    if d["wrong_values"]:
        return Classification(CONTENT_ERROR, d)
    d["cf"] = True
    return Classification(CORRECT, d)


def _unexpected_call(pred: Call, tools: dict | None, mode: str) -> Classification:
    """A call where gold expects none: the right 'tool' was no tool at all."""
    return Classification(WRONG_TOOL if tools is None or pred.name in tools else TOOL_HALLUCINATION, _details(mode, pred.name))


def _prepare(pred, tools, mode, tokenize):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; found {mode!r}")
    parsed = pred if isinstance(pred, Parsed) else parse(pred)
    # BFCL's checker reads its own schemas' type words (float, tuple), which normalisation merges.
    by_name = None if tools is None else {t["name"]: t for t in (tools if mode == "bfcl" else normalize_tools(tools))}
    return parsed, by_name, tokenize or split_name


def _gold_calls(gold) -> list[Call]:
    golds = gold if isinstance(gold, (list, tuple)) else [gold]
    if not golds:
        raise ValueError("gold must be a Call, a non-empty list of acceptable Calls, or None; found []")
    return [Call.from_dict(g) for g in golds]


def classify(pred, gold, tools, *, mode: str = "strict", tokenize=None, bfcl_value_ok=None,
             unchecked_tools=ROTBENCH_UNCHECKED_TOOLS, aliases=None) -> Classification:
    """Classify model output (text or a `Parsed`) against `gold` (see the module docstring for
    gold forms and modes). `tools`: the available tools in any form `normalize_tools` accepts;
    None skips the tool-hallucination check and treats every key gold does not use as
    hallucinated. `tokenize`: name -> tokens for the wrong-tool statistics (default
    `split_name`; SFT/eval may pass the model's tokenizer).

    RoTBench's role rules (mode "rotbench", from tasks.rotbench.role_rules):
    `unchecked_tools` = the gold tools whose argument values are not checked, `aliases` =
    {predicted name: gold name} read as the same tool. With several acceptable golds, "rotbench"
    picks the gold that reaches the furthest stage (CF, then PI, then TS, then reward): its "any
    answer" rule for each of TS, PI and CF; other modes pick the best reward."""
    parsed, tools, tokenize = _prepare(pred, tools, mode, tokenize)
    if parsed.kind == "error":
        return Classification(UNPARSABLE, _details(mode, parse_error=parsed.error))
    calls = parsed.calls
    if not calls:
        return Classification(CORRECT, _details(mode, ts=True, pi=True, cf=True)) if gold is None else \
            Classification(NO_CALL, _details(mode, gold_name=_gold_calls(gold)[0].name))
    if gold is None:
        c = _unexpected_call(calls[0], tools, mode)
    else:
        golds = _gold_calls(gold)
        results = [_classify_one(calls[0], g, tools, mode, tokenize, bfcl_value_ok, unchecked_tools, aliases) for g in golds]
        keep = range(len(results))
        if mode == "rotbench":  # evaluate.py's CF loop also deletes a gold's "None" keys from the prediction:
            # after the first gold with the prediction's tool and keys that holds one, no later such gold matches
            same = [i for i in keep if results[i].details["pi"]]
            first = next((i for i in same if "None" in golds[i].arguments.values()), len(results))
            keep = [i for i in keep if i <= first or i not in same]
        stages = (lambda d: (d["cf"], d["pi"], d["ts"])) if mode == "rotbench" else (lambda d: ())
        best = max(keep, key=lambda i: (*stages(results[i].details), call_reward(results[i]), -i))
        c = results[best]
        c.details["gold_index"] = best
    if len(calls) > 1:  # extra calls: each an unexpected call, the output the worst (module docstring)
        worst = _worst([c, *(_unexpected_call(p, tools, mode) for p in calls[1:])])
        c = Classification(worst.category, {**c.details, "ts": False, "pi": False, "cf": False})
    c.details["extra_calls"] = [p.name for p in calls[1:]]
    return c


def _worst(results: list[Classification]) -> Classification:
    order = {cat: i for i, cat in enumerate((UNPARSABLE, NO_CALL, TOOL_HALLUCINATION, WRONG_TOOL, *PARAM_CATEGORIES, CONTENT_ERROR, CORRECT))}
    return min(results, key=lambda c: (call_reward(c), order[c.category]))


def classify_calls(pred, gold_calls, tools, *, mode: str = "strict", tokenize=None,
                   bfcl_value_ok=None) -> CallsClassification:
    """Parallel gold (BFCL): match predicted calls to gold calls regardless of order, as BFCL's
    checker does (each gold call, in order, takes the first unmatched prediction that is right;
    so the output is `correct` exactly when BFCL finds it valid), then the remaining pairs by
    reward; classify each pair. Unmatched gold calls are `no_call`, unmatched predictions are
    scored as unexpected calls. The overall category is the worst result."""
    parsed, tools, tokenize = _prepare(pred, tools, mode, tokenize)
    golds = [Call.from_dict(g) for g in gold_calls]
    if parsed.kind == "error":
        per = [Classification(UNPARSABLE, _details(mode, gold_name=g.name, parse_error=parsed.error)) for g in golds]
        return CallsClassification(UNPARSABLE, {"matches": [], "extra_calls": [], "parse_error": parsed.error}, per)
    preds = parsed.calls
    if mode == "bfcl" and bfcl_value_ok is None:
        raise ValueError("mode='bfcl' judges values with BFCL's checker rules: pass bfcl_value_ok=tasks.bfcl.value_ok")
    pairs = {(i, j): _classify_one(p, g, tools, mode, tokenize, bfcl_value_ok)
             for i, g in enumerate(golds) for j, p in enumerate(preds)}
    matched: dict[int, int] = {}
    for i in range(len(golds)):  # BFCL's rule: each gold call in turn takes the first free prediction that is right
        j = next((j for j in range(len(preds)) if j not in matched.values() and pairs[i, j].category == CORRECT), None)
        if j is not None:
            matched[i] = j
    for i, j in sorted(pairs, key=lambda ij: (-call_reward(pairs[ij]), ij)):  # the rest by reward (error analysis)
        if i not in matched and j not in matched.values():
            matched[i] = j
    per = [pairs[i, matched[i]] if i in matched else Classification(NO_CALL, _details(mode, gold_name=g.name))
           for i, g in enumerate(golds)]
    extra = [j for j in range(len(preds)) if j not in matched.values()]
    everything = per + [_unexpected_call(preds[j], tools, mode) for j in extra]
    if not everything:  # no gold calls and no predicted calls
        return CallsClassification(CORRECT, {"matches": [], "extra_calls": []}, [])
    worst = _worst(everything)
    details = {"matches": [(i, matched.get(i)) for i in range(len(golds))], "extra_calls": extra,
               "n_pred_calls": len(preds), "n_gold_calls": len(golds)}
    return CallsClassification(worst.category, details, per)


def reward(pred_text, gold, tools, *, mode: str = "strict") -> float:
    """Paper Sec. 3.3, R(t) for one generated output: `call_reward(classify(...))`; an output
    with extra calls scores as the module docstring says (never +1)."""
    return call_reward(classify(pred_text, gold, tools, mode=mode))


# ----------------------------------------------------------------------------- feedback (MAE)

# Ordered: the first pattern that matches the error text decides. Specific Python messages
# come first, so "TypeError: f() got an unexpected keyword argument 'x'" is a parameter
# hallucination, not a generic exception.
_FEEDBACK_RULES = [(cat, re.compile(rx, re.I)) for cat, rx in [
    (PARAM_MISSING, r"missing \d+ required (?:positional |keyword-only )?arguments?"
                    r"|missing required (?:parameter|argument|field)|required (?:parameter|argument) \S+ (?:is )?missing"),
    (PARAM_HALLUCINATION, r"got an unexpected keyword argument|unexpected (?:keyword )?(?:argument|parameter)"
                          r"|takes \d+ positional arguments? but \d+ (?:were|was) given|takes no (?:keyword )?arguments"),
    (TOOL_HALLUCINATION, r"name '[^']*' is not defined|\b(?:unknown|invalid|nonexistent|non-existent) (?:tool|function|action)\b"
                         r"|no such (?:tool|function)|module '[^']*' has no attribute"),
    (OTHERS, r"argument '[^']*' must be [\w. ]+, not \w+|must be (?:a |an )?\w+, not \w+"),  # a wrong argument type
    (TOOL_INSTABILITY, r"connection ?error|connection (?:refused|reset|aborted)|timed out|\btimeout\b|max retries exceeded"
                       r"|\b[45]\d\d (?:client|server) error|\bhttp ?error:? ?[45]\d\d\b|internal server error"
                       r"|invalid api call|service unavailable|too many requests"
                       r"|rate limit|bad gateway|temporary failure in name resolution|name or service not known"
                       r"|\bhttperror\b|status code:? ?[45]\d\d\b|network is unreachable"),
    (TOOL_CALL_FAILURE, r"response error|traceback \(most recent call last\)|is not json serializable"
                        r"|slice indices must be integers"
                        # A Python exception's last traceback line (`ValueError: x`, a bare `SystemExit`),
                        # at the start of the text only: "Error handling in Python ..." stays all right.
                        r"|\A\s*(?:[\w.]*(?:error|exception)|error|" + "|".join(_EXCEPTION_NAMES) + r")\s*(?:[:!\-]|\Z)"
                        r"|\A\s*(?:an? )?(?:unexpected |unknown |internal )?error (?:occurred|occured|happened|while)"),
    (OTHERS, r"\bnot supported\b"),  # the authors' pattern list ("Sorry, this currency pair is not supported.")
]]

# ToolEyes wraps every failed call in this sentence (paper Table 14); whatever reason follows, the call failed.
_TOOLEYES_FAILURE = re.compile(r"^\s*the function cannot be executed successfully with the given parameters"
                               r"(?: for the reason)?:?\s*", re.I)
_ERROR_KEYS = ("error", "errors", "errormessage", "errmsg", "err", "exception", "fault")


def _error_of_payload(obj, depth: int = 0):
    """The error part of a structured tool output, or None when it reports success: a top-level
    or nested error field (keys compared on their letters, so "Error Message" is one), a failed
    status, or an HTTP error code beside a message."""
    if not isinstance(obj, dict) or depth > 3:
        return None
    for k, v in obj.items():
        if isinstance(k, str) and re.sub(r"[^a-z]", "", k.lower()) in _ERROR_KEYS and v:
            return v
    if str(obj.get("status", "")).lower() in ("error", "fail", "failed", "failure") or obj.get("success") is False:
        return obj.get("message") or obj.get("msg") or obj
    code = next((obj[k] for k in ("code", "status", "status_code", "statusCode") if k in obj), None)
    if isinstance(code, (int, str)) and not isinstance(code, bool) and re.fullmatch(r"[45]\d\d", str(code)):
        return obj.get("message") or obj.get("msg") or f"{code} Server Error"
    return next((e for v in obj.values() if (e := _error_of_payload(v, depth + 1)) is not None), None)


def _match_rules(text: str) -> str | None:
    return next((cat for cat, rx in _FEEDBACK_RULES if rx.search(text)), None)


def _classify_feedback_text(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return ALL_RIGHT
    wrapped = _TOOLEYES_FAILURE.match(stripped)
    if wrapped:
        return _match_rules(stripped[wrapped.end():]) or TOOL_CALL_FAILURE
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


# The authors' MAE rule (code/mae/mae.py): after stripping everything but letters and digits and
# lower-casing, a feedback is an error if it contains one of these (so, in effect, "error").
AUTHORS_ERROR_PATTERNS = ("is not defined", "positional argument", "unexpected keyword", "'related_searches'",
                          "ConnectionError", '"error":', "not supported", "Invalid API call", "Response error",
                          "Object of type SerpResults is not JSON serializable", "400 Client Error", "'error'",
                          "slice indices must be integers or None or have an __index__ method", "connection error")


def _letters_and_digits(text: str) -> str:
    return re.sub(r"[^\u4e00-\u9fa5a-zA-Z0-9]", "", text).lower()


def authors_feedback_is_error(text: str) -> bool:
    """`--mae_rule authors`: the authors' substring test on the stripped, lower-cased feedback."""
    flat = _letters_and_digits(str(text))
    return any(_letters_and_digits(p) in flat for p in AUTHORS_ERROR_PATTERNS)


def classify_feedback(text_or_result) -> str:
    """Feedback after a call -> one of FEEDBACK_CATEGORIES (paper Fig. 3 / Table 14).

    Accepts free text (the tool message as the model sees it), the sandbox's structured result
    `{"ok", "category", "message", "output"}` (a valid `category` is trusted; `ok` without a
    category means all right, or the message's category, else tool_call_failure), or a tool
    message dict (its `result`, else its `content`). JSON / Python-literal outputs count as
    errors only through a top-level error field (`error`, `errors`, `status: "error"`, ...):
    an error payload whose message matches no rule is `others`; any other structured output is
    `all_right`. Free text is matched against specific error messages (see _FEEDBACK_RULES).
    """
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
