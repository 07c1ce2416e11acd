"""Evaluation metrics as pure functions of the text layer's classifications (paper Sec. 4.3).

Nothing here compares a prediction with a gold answer: `tl.classify` does that once, and the
numbers below are read off its categories and details, so SFT/PPO rewards and evaluation can
never disagree about what a mistake is.

Single turn (RoTBench, ToolAlpaca, BFCL-v3, the synthetic split), each in percent of items:
- TS (tool selection): the predicted tool name is the gold one;
- PI (parameter identification): TS and the set of keys equals the gold set;
- CF (content filling): PI and every value is right under the benchmark's value rules.
An output with more calls than the gold expects is wrong on all three (tl.classify). For
parallel gold (BFCL) an item counts for TS / PI only when every gold call was matched by a
predicted call that reached that stage and no predicted call is left over, and for CF only
when the whole set is correct. BFCL (live_)irrelevance (no call expected): the item is right on
all three when the output holds no call -- a plain answer, or, as in BFCL's own
`relevance_file_runner`, an output that does not decode as calls at all (`unparsable`);
live_relevance is right on all three with any call (tasks.run.score_item).

Multi-turn (ToolEyes, the synthetic multi-turn split), within 9 turns:
- DE: % of calls with a documentation-understanding error (tool hallucination, parameter
  hallucination, missing required parameter);
- CE: % of calls with any other error (a wrong argument type, the tool raising, a timeout, or a
  call that does not parse);
- VA: % of tasks that end with a valid final answer (non-empty text, or a `finish` call with a
  non-empty answer) within 9 turns.

Error analysis (paper Table 1) over every scored call: the share of each call category, the
parameter flags (a call can be both redundant and missing), and for wrong tools the share whose
first name token already differs vs. that share a token prefix with the gold name.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tl.classify import (ALL_RIGHT, CALL_CATEGORIES, CONTENT_ERROR, CORRECT, PARAM_HALLUCINATION, PARAM_MISSING,
                         TOOL_HALLUCINATION, UNPARSABLE, WRONG_TOOL)

STAGES = ("TS", "PI", "CF")
DOC_ERRORS = (TOOL_HALLUCINATION, PARAM_HALLUCINATION, PARAM_MISSING)  # DE; sandbox feedback categories


def percent(k, n) -> float:
    """k / n in percent, rounded to 2 decimals (0 for an empty set)."""
    return round(100.0 * k / n, 2) if n else 0.0


def item_stages(category: str, details: dict, *, per_call=None, no_call_expected: bool = False) -> dict:
    """TS / PI / CF (booleans) of one item from its classification.

    `details` of a single-call classification carry `ts` / `pi` / `cf`; for parallel gold pass
    the per-call classifications (`CallsClassification.per_call`) and the overall details.
    """
    if no_call_expected:
        ok = category in (CORRECT, UNPARSABLE)  # BFCL: no decodable call = right
        return dict.fromkeys(STAGES, ok)
    if per_call is not None:
        clean = not details.get("extra_calls")
        return {"TS": clean and all(c.details["ts"] for c in per_call),
                "PI": clean and all(c.details["pi"] for c in per_call),
                "CF": category == CORRECT}
    return {"TS": bool(details["ts"]), "PI": bool(details["pi"]), "CF": bool(details["cf"])}


def stage_rates(records) -> dict:
    """{"n", "TS", "PI", "CF"} in percent over records that each hold TS/PI/CF booleans."""
    n = len(records)
    return {"n": n, **{s: percent(sum(bool(r[s]) for r in records), n) for s in STAGES}}


def error_analysis(calls) -> dict:
    """Paper Table 1 over call classifications (`(category, details)` pairs): category counts
    and shares, parameter flags, and the wrong-tool token statistics."""
    calls = list(calls)
    n = len(calls)
    counts = Counter(cat for cat, _ in calls)
    flags = Counter()
    for _, d in calls:  # each flag once per call; one call can carry several
        for key in ("hallucinated", "redundant", "missing"):
            flags[key] += bool(d.get(key))
    wrong = [d for cat, d in calls if cat == WRONG_TOOL and d.get("first_token_differs") is not None]
    return {
        "n_calls": n,
        "categories": {cat: {"n": counts[cat], "percent": percent(counts[cat], n)} for cat in CALL_CATEGORIES},
        "parameters": {k: {"n": flags[k], "percent": percent(flags[k], n)} for k in ("redundant", "missing", "hallucinated")},
        "content": {"n": counts[CONTENT_ERROR], "percent": percent(counts[CONTENT_ERROR], n)},
        "wrong_tool": {
            "n": len(wrong),
            "first_token_differs": percent(sum(bool(d["first_token_differs"]) for d in wrong), len(wrong)),
            "shares_prefix": percent(sum(bool(d["shares_prefix"]) for d in wrong), len(wrong)),
        },
    }


def _by_group(records, key: str, summarize) -> dict:
    groups = defaultdict(list)
    for r in records:
        groups[r.get(key, "")].append(r)
    return {g: summarize(rs) for g, rs in sorted(groups.items())}


def single_turn_metrics(records) -> dict:
    """Records (one per item: "scenario", "TS"/"PI"/"CF" booleans, "calls" = its call
    classifications as `(category, details)`) -> metrics.json content: n, TS, PI, CF in
    percent, per scenario/category, and the error analysis."""
    records = list(records)
    return {**stage_rates(records),
            "by_category": _by_group(records, "scenario", stage_rates),
            "errors": error_analysis(c for r in records for c in r["calls"])}


def is_doc_error(category: str) -> bool:
    """DE's definition: the call misread the tool documentation."""
    return category in DOC_ERRORS


def call_error_rates(episodes) -> dict:
    """{"n", "DE", "CE", "VA"} over episodes (dicts with "calls" = feedback categories of every
    call made, and "valid_answer" = bool)."""
    episodes = list(episodes)
    cats = [c for e in episodes for c in e["calls"]]
    de = sum(is_doc_error(c) for c in cats)
    ce = sum(c != ALL_RIGHT and not is_doc_error(c) for c in cats)
    return {"n": len(episodes), "calls": len(cats), "DE": percent(de, len(cats)), "CE": percent(ce, len(cats)),
            "VA": percent(sum(bool(e["valid_answer"]) for e in episodes), len(episodes))}


def multi_turn_metrics(episodes) -> dict:
    """Episodes (one per task: "scenario", "calls", "valid_answer") -> metrics.json content:
    n, DE, CE, VA in percent (DE/CE per call, VA per task), per scenario, and the count of each
    feedback category."""
    episodes = list(episodes)
    counts = Counter(c for e in episodes for c in e["calls"])
    return {**call_error_rates(episodes),
            "by_category": _by_group(episodes, "scenario", call_error_rates),
            "feedback": dict(sorted(counts.items()))}
