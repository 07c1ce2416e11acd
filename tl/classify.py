"""The error taxonomy, shared by MAE (feedback), PPO (reward) and evaluation (TS/PI/CF, Table 1).

Call classification, for one predicted call against a gold call and the available tools. The
first category that applies is reported (paper Sec. 3.3):
  unparsable / no_call -> tool_hallucination (name not among the tools) -> wrong_tool ->
  param_hallucination > param_missing > param_redundant (all three flags kept in details) ->
  content_error (right tool and keys, a value differs) -> correct.
Parameter flags (the original code's definitions): hallucinated = a predicted key the gold
tool does not declare (and gold does not use); redundant = declared but not in the gold call;
missing = a gold key not predicted.

Value comparison, by `mode`:
- "strict": JSON equality; the only normalisation is that ints and floats compare by value
  (1 == 1.0). Booleans are not numbers (true != 1); strings are compared exactly.
- "rotbench": what RoTBench's evaluate.py does: values compared with Python `==` after
  json.loads (so "1" != 1, but also true == 1), a gold value "None" is not checked (the key must
  still be present), and the values of `finish` / `ask_to_user` calls are never checked (by
  name by default; RoTBench itself takes these roles by position, see `classify`). Not
  copied: evaluate.py skips (counts wrong) every prediction with an empty argument dict, even
  when the gold call has no arguments either.
- "bfcl": gold values are lists of acceptable values (BFCL possible_answer); "" in the list
  means the key may be omitted. Strings compare after BFCL's standardize_string (drop
  spaces and , . / - _ * ^, lower-case, ' -> "); numbers by value (int accepted for float),
  except that a float is rejected for an `integer` parameter; booleans only equal booleans;
  lists element-wise in order; dicts key by key against nested acceptable lists.

Gold forms: a Call (or {"name", "arguments"} dict); a list of Calls = several acceptable answers
(RoTBench), scored against the best-scoring one; None = no call expected (BFCL irrelevance):
a plain answer is correct, a call is `wrong_tool` (or `tool_hallucination` if its name is not a
tool). When the prediction holds several calls but gold is one call, the first call is scored
and the others are listed in details["extra_calls"]; use `classify_calls` for parallel gold.
"""
from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass

from tl.parse import Parsed, parse, parse_literal
from tl.schema import Call, normalize_tools

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
ROTBENCH_UNCHECKED_TOOLS = ("finish", "ask_to_user")
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


def bfcl_standardize(s: str) -> str:
    """BFCL's standardize_string: drop spaces and , . / - _ * ^, lower-case, ' -> "."""
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


def bfcl_match(pred, acceptable) -> bool:
    """One predicted value against one acceptable BFCL value (recursively for lists/dicts)."""
    if isinstance(acceptable, dict):
        if not isinstance(pred, dict):
            return False
        for k, v in pred.items():
            options = acceptable.get(k)
            options = options if isinstance(options, list) else [options]
            if k not in acceptable or not any(bfcl_match(v, o) for o in options):
                return False
        return all(k in pred or (isinstance(o, list) and "" in o) for k, o in acceptable.items())
    if isinstance(acceptable, list):
        return isinstance(pred, list) and len(pred) == len(acceptable) and all(map(bfcl_match, pred, acceptable))
    if isinstance(acceptable, str):
        return isinstance(pred, str) and bfcl_standardize(pred) == bfcl_standardize(acceptable)
    return strict_equal(pred, acceptable)


def _value_ok(pred_value, gold_value, mode: str, prop: dict | None) -> bool:
    if mode == "strict":
        return strict_equal(pred_value, gold_value)
    if mode == "rotbench":
        return gold_value == "None" or pred_value == gold_value
    if (prop or {}).get("type") == "integer" and isinstance(pred_value, float):
        return False
    return any(bfcl_match(pred_value, a) for a in gold_value)


# ----------------------------------------------------------------------------- one call


def _details(mode, pred_name=None, gold_name=None, **extra) -> dict:
    d = {"predicted_name": pred_name, "gold_name": gold_name, "hallucinated": [], "redundant": [],
         "missing": [], "wrong_values": [], "ts": False, "pi": False, "cf": False,
         "first_token_differs": None, "shares_prefix": None, "common_prefix_tokens": None,
         "extra_calls": [], "gold_index": None, "parse_error": None, "mode": mode}
    d.update(extra)
    return d


def _classify_one(pred: Call, gold: Call, tools: dict | None, mode: str, tokenize,
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
    schema = (tools or {}).get(gold.name)
    props = schema["parameters"]["properties"] if schema else {}
    if mode == "bfcl":
        for k, v in gold.arguments.items():
            if not isinstance(v, list):
                raise ValueError(f"mode='bfcl': gold {gold.name}.{k} must be a list of acceptable values; found {v!r:.100}")
    optional = {k for k, v in gold.arguments.items() if mode == "bfcl" and "" in v}
    d["hallucinated"] = [k for k in pred.arguments if k not in props and k not in gold.arguments]
    d["redundant"] = [k for k in pred.arguments if k in props and k not in gold.arguments]
    d["missing"] = [k for k in gold.arguments if k not in pred.arguments and k not in optional]
    for category, key in zip(PARAM_CATEGORIES, ("hallucinated", "missing", "redundant")):
        if d[key]:
            return Classification(category, d)
    d["pi"] = True
    if not (mode == "rotbench" and gold.name in unchecked_tools):
        d["wrong_values"] = [k for k in gold.arguments if k in pred.arguments
                             and not _value_ok(pred.arguments[k], gold.arguments[k], mode, props.get(k))]
    if d["wrong_values"]:
        return Classification(CONTENT_ERROR, d)
    d["cf"] = True
    return Classification(CORRECT, d)


def _unexpected_call(pred: Call, tools: dict | None, mode: str) -> Classification:
    """A call where gold expects none: the right 'tool' was no tool at all."""
    known = tools is None or pred.name in tools
    return Classification(WRONG_TOOL if known else TOOL_HALLUCINATION, _details(mode, pred.name, None))


def _prepare(pred, tools, mode, tokenize):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; found {mode!r}")
    parsed = pred if isinstance(pred, Parsed) else parse(pred)
    by_name = None if tools is None else {t["name"]: t for t in normalize_tools(tools)}
    return parsed, by_name, tokenize or split_name


def _gold_calls(gold) -> list[Call]:
    golds = gold if isinstance(gold, (list, tuple)) else [gold]
    if not golds:
        raise ValueError("gold must be a Call, a non-empty list of acceptable Calls, or None; found []")
    return [Call.from_dict(g) for g in golds]


def classify(pred, gold, tools, *, mode: str = "strict", tokenize=None,
             unchecked_tools=ROTBENCH_UNCHECKED_TOOLS, aliases=None) -> Classification:
    """Classify model output (text or a `Parsed`) against `gold` (see the module docstring for
    gold forms and modes). `tools`: the available tools in any form `normalize_tools` accepts;
    None skips the tool-hallucination check and treats every key gold does not use as
    hallucinated. `tokenize`: name -> tokens for the wrong-tool statistics (default
    `split_name`; SFT/eval may pass the model's tokenizer).

    RoTBench's role rules (mode "rotbench"): `unchecked_tools` = the tools whose argument values
    are not checked, and `aliases` = {predicted name: gold name} read as the same tool. RoTBench's
    evaluate.py takes these roles by *position* -- the last two tools of the prompt are
    ask_to_user and finish, which its noisy variants rename -- and accepts a literal "finish" for
    the finish-role tool; `tl.benchmarks.rotbench` passes them. With several acceptable golds,
    "rotbench" picks the gold that reaches the furthest stage (CF, then PI, then TS, then reward),
    which is RoTBench's "any answer" rule for each of TS, PI and CF; other modes pick the best reward."""
    parsed, tools, tokenize = _prepare(pred, tools, mode, tokenize)
    if parsed.kind == "error":
        return Classification(UNPARSABLE, _details(mode, parse_error=parsed.error))
    first, extra = (parsed.calls[0], [c.name for c in parsed.calls[1:]]) if parsed.calls else (None, [])
    if gold is None:
        if first is None:
            return Classification(CORRECT, _details(mode, ts=True, pi=True, cf=True))
        c = _unexpected_call(first, tools, mode)
    elif first is None:
        return Classification(NO_CALL, _details(mode, gold_name=_gold_calls(gold)[0].name))
    else:
        results = [_classify_one(first, g, tools, mode, tokenize, unchecked_tools, aliases) for g in _gold_calls(gold)]

        def rank(i):
            d = results[i].details
            stages = (d["cf"], d["pi"], d["ts"]) if mode == "rotbench" else ()
            return (*stages, call_reward(results[i]), -i)
        best = max(range(len(results)), key=rank)
        c = results[best]
        c.details["gold_index"] = best
    c.details["extra_calls"] = extra
    return c


def _worst(results: list[Classification]) -> Classification:
    order = {cat: i for i, cat in enumerate((UNPARSABLE, NO_CALL, TOOL_HALLUCINATION, WRONG_TOOL, *PARAM_CATEGORIES, CONTENT_ERROR, CORRECT))}
    return min(results, key=lambda c: (call_reward(c), order[c.category]))


MAX_EXACT_MATCHING = 10  # predicted calls; beyond this the matching is greedy


def _best_matching(score: dict, n_gold: int, n_pred: int) -> dict[int, int]:
    """gold index -> predicted index maximising the total reward (an unmatched gold call counts
    as no_call, -2). Exact search over subsets of predictions (BFCL's own first-fit matching can
    miss a valid assignment when a gold call accepts several values); greedy for huge outputs."""
    if n_pred > MAX_EXACT_MATCHING:
        matched: dict[int, int] = {}
        for (i, j) in sorted(score, key=lambda ij: (-score[ij], ij)):
            if i not in matched and j not in matched.values():
                matched[i] = j
        return matched
    memo: dict = {}

    def best(i: int, used: int):
        if i == n_gold:
            return 0.0, ()
        if (i, used) not in memo:
            options = []
            for j in [j for j in range(n_pred) if not used >> j & 1] + [None]:
                total, rest = best(i + 1, used if j is None else used | 1 << j)
                options.append((total + (_FIXED_REWARD[NO_CALL] if j is None else score[i, j]), (j, *rest)))
            memo[i, used] = max(options, key=lambda o: o[0])  # first maximum: lowest index wins ties
        return memo[i, used]

    return {i: j for i, j in enumerate(best(0, 0)[1]) if j is not None}


def classify_calls(pred, gold_calls, tools, *, mode: str = "strict", tokenize=None) -> CallsClassification:
    """Parallel gold (BFCL parallel / parallel_multiple): match predicted calls to gold calls
    regardless of order (the assignment with the highest total reward), classify each pair; unmatched gold
    calls are `no_call`, unmatched predictions are scored as unexpected calls. The overall
    category is the worst result; it is `correct` only when every call is."""
    parsed, tools, tokenize = _prepare(pred, tools, mode, tokenize)
    golds = [Call.from_dict(g) for g in gold_calls]
    if parsed.kind == "error":
        per = [Classification(UNPARSABLE, _details(mode, gold_name=g.name, parse_error=parsed.error)) for g in golds]
        return CallsClassification(UNPARSABLE, {"matches": [], "extra_calls": [], "parse_error": parsed.error}, per)
    preds = parsed.calls
    pairs = {(i, j): _classify_one(p, g, tools, mode, tokenize) for i, g in enumerate(golds) for j, p in enumerate(preds)}
    matched = _best_matching({ij: call_reward(c) for ij, c in pairs.items()}, len(golds), len(preds))
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
    """Paper Sec. 3.3, R(t) for one generated call: `call_reward(classify(...))`."""
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
