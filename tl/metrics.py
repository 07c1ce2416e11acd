"""Evaluation metrics (paper Sec. 4.3) as pure functions of `tl.classify`'s classifications, so
rewards and evaluation never disagree about what a mistake is.

Single turn, in percent of items: TS = the predicted tool is the gold one; PI = TS and the keys
equal the gold keys; CF = PI and every value is right under the benchmark's rules; more calls than
gold expects is wrong on all three. Parallel gold (BFCL): TS / PI when every gold call was matched
by a call reaching that stage and none is left over, CF when the whole set is correct. BFCL
irrelevance: right on all three for no call, a plain answer or (`relevance_file_runner`) unparsable.
Multi-turn, within 9 turns: DE = % of calls with a documentation error (`DOC_ERRORS`); CE = % with
any other error; VA = % of tasks ending with a valid final answer. Table 1: `error_analysis`.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tl.classify import (
    ALL_RIGHT,
    CALL_CATEGORIES,
    CONTENT_ERROR,
    CORRECT,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    TOOL_HALLUCINATION,
    UNPARSABLE,
    WRONG_TOOL,
)

STAGES = ("TS", "PI", "CF")
# DE: the call misread the documentation
DOC_ERRORS = (TOOL_HALLUCINATION, PARAM_HALLUCINATION, PARAM_MISSING)


def percent(k, n) -> float:
    """k / n in percent, rounded to 2 decimals (0 for an empty set)."""
    return round(100.0 * k / n, 2) if n else 0.0


def item_stages(category: str, details: dict, *, per_call=None, no_call_expected: bool = False) -> dict:
    """TS / PI / CF booleans of one item from its classification (parallel gold: pass
    `CallsClassification.per_call` and its details)."""
    if no_call_expected:
        # BFCL irrelevance: no decodable call at all is right
        return dict.fromkeys(STAGES, category in (CORRECT, UNPARSABLE))
    if per_call is not None:
        clean = not details.get("extra_calls")
        return {
            "TS": clean and all(c.details["ts"] for c in per_call),
            "PI": clean and all(c.details["pi"] for c in per_call),
            "CF": category == CORRECT,
        }
    return {"TS": bool(details["ts"]), "PI": bool(details["pi"]), "CF": bool(details["cf"])}


def _share(k, n) -> dict:
    return {"n": k, "percent": percent(k, n)}


def stage_rates(records) -> dict:
    """{"n", "TS", "PI", "CF"} in percent over records that each hold TS/PI/CF booleans."""
    n = len(records)
    rates = {s: percent(sum(bool(r[s]) for r in records), n) for s in STAGES}
    return {"n": n, **rates}


def error_analysis(calls) -> dict:
    """Paper Table 1 over `(category, details)` pairs: category shares, parameter flags (each once
    per call) and the wrong-tool token statistics."""
    calls = list(calls)
    n = len(calls)
    counts = Counter(cat for cat, _ in calls)
    flags = Counter()  # calls with at least one key of each kind
    for _, d in calls:
        for key in ("hallucinated", "redundant", "missing"):
            if d.get(key):
                flags[key] += 1
    # the wrong-tool calls whose name statistics were taken
    wrong = [d for cat, d in calls if cat == WRONG_TOOL and d.get("first_token_differs") is not None]
    wrong_tool = {"n": len(wrong)}
    for k in ("first_token_differs", "shares_prefix"):
        wrong_tool[k] = percent(sum(bool(d[k]) for d in wrong), len(wrong))
    return {
        "n_calls": n,
        "categories": {cat: _share(counts[cat], n) for cat in CALL_CATEGORIES},
        "parameters": {k: _share(flags[k], n) for k in ("redundant", "missing", "hallucinated")},
        "content": _share(counts[CONTENT_ERROR], n),
        "wrong_tool": wrong_tool,
    }


def _by_group(records, key: str, summarize) -> dict:
    groups = defaultdict(list)
    for r in records:
        groups[r.get(key, "")].append(r)
    return {g: summarize(rs) for g, rs in sorted(groups.items())}


def single_turn_metrics(records) -> dict:
    """Records ("scenario", "TS"/"PI"/"CF" booleans, "calls" = `(category, details)` pairs) ->
    metrics.json: TS, PI, CF in percent, per scenario, and the error analysis."""
    records = list(records)
    return {
        **stage_rates(records),
        "by_category": _by_group(records, "scenario", stage_rates),
        "errors": error_analysis(c for r in records for c in r["calls"]),
    }


def call_error_rates(episodes) -> dict:
    """{"n", "calls", "DE", "CE", "VA"} over episodes ("calls" = feedback categories, "valid_answer")."""
    episodes = list(episodes)
    cats = [c for e in episodes for c in e["calls"]]
    de = sum(c in DOC_ERRORS for c in cats)
    ce = sum(c not in (ALL_RIGHT, *DOC_ERRORS) for c in cats)
    return {
        "n": len(episodes),
        "calls": len(cats),
        "DE": percent(de, len(cats)),
        "CE": percent(ce, len(cats)),
        "VA": percent(sum(bool(e["valid_answer"]) for e in episodes), len(episodes)),
    }


def multi_turn_metrics(episodes) -> dict:
    """Episodes ("scenario", "calls", "valid_answer") -> metrics.json: DE, CE (per call), VA (per
    task) in percent, per scenario, and the count of each feedback category."""
    episodes = list(episodes)
    counts = Counter(c for e in episodes for c in e["calls"])
    return {
        **call_error_rates(episodes),
        "by_category": _by_group(episodes, "scenario", call_error_rates),
        "feedback": dict(sorted(counts.items())),
    }
