"""Running an evaluation: generate predictions for Items, score them, run multi-turn Tasks.

The wiring only: prompts come from `tl.render`, ids from the model's `Tokenizer`, outputs from
`tl.generate`, classifications from `tl.classify`, numbers from `tl.metrics`, episodes from
`tl.episode`.
"""

from __future__ import annotations

import json

from tl.benchmarks.base import BenchmarkError
from tl.classify import classify, classify_calls
from tl.metrics import item_stages, single_turn_metrics
from tl.render import render_prompt
from tl.schema import Call


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.to_dict() if isinstance(o, Call) else str(o)))


def score_item(item, output: str, tokenize=None) -> dict:
    """One prediction -> its record: id, output, scenario (the benchmark's category), category
    (the prediction's, from tl.classify), TS/PI/CF, details, and the call classifications that
    feed the error analysis. BFCL is matched order-free over all of its calls (a wrong number
    of calls is never correct, as in BFCL's checker); the other benchmarks score one call."""
    if item.mode == "bfcl":
        golds = [Call(*next(iter(entry.items()))) for entry in item.gold]
        c = classify_calls(output, golds, item.tools, mode="bfcl", tokenize=tokenize)
        stages = item_stages(c.category, c.details, per_call=c.per_call, no_call_expected=not golds)
        calls = [(x.category, x.details) for x in c.per_call] or [(c.category, c.details)]
        details = {**c.details, "per_call": [{"category": x.category, **x.details} for x in c.per_call]}
    else:
        c = classify(output, item.gold, item.tools, mode=item.mode, tokenize=tokenize, **item.options)
        stages, calls, details = item_stages(c.category, c.details), [(c.category, c.details)], c.details
    return {"id": item.id, "output": output, "scenario": item.category, "category": c.category, **stages,
            "details": _jsonable(details), "calls": calls}


def score(items, outputs: dict, tokenize=None) -> tuple[dict, list]:
    """Score every item's output -> (metrics, per-item records). Every item needs an output."""
    missing = [it.id for it in items if it.id not in outputs]
    if missing:
        raise BenchmarkError(f"no prediction for {len(missing)} of {len(items)} items (first: {missing[0]!r}); "
                             "predictions are matched by item id")
    records = [score_item(it, outputs[it.id], tokenize) for it in items]
    return single_turn_metrics(records), records


def prompt_ids(tok, item) -> list[int]:
    """The item rendered in the model's format (paper Table 13), as token ids."""
    return tok.encode_chat(render_prompt(item.tools, item.messages))


def predict(model, tok, items, *, batch_size: int = 8, max_new_tokens: int = 256, progress=None) -> dict:
    """Greedy predictions for Items -> {id: output text}. Prompts are sorted by length and
    batched (`batch_size`), so rows in a batch need little left padding; the KV cache is
    `tl.generate`'s. `progress(k)` is called after each batch with its size."""
    from tl.generate import generate  # torch only when a model runs

    prompts = [prompt_ids(tok, it) for it in items]
    order = sorted(range(len(items)), key=lambda i: len(prompts[i]))
    outputs = {}
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        gen = generate(model, [prompts[i] for i in batch], max_new_tokens=max_new_tokens, eos_id=tok.eos_id,
                       pad_id=tok.pad_id, temperature=0.0, tokenizer=tok)
        for i, text in zip(batch, gen.texts):
            outputs[items[i].id] = text
        if progress is not None:
            progress(len(batch))
    return outputs
