"""Evaluation glue: predictions for Items, their scores, executors and records for multi-turn Tasks."""

from __future__ import annotations

import json
import warnings

from tasks import bfcl
from tasks.base import BenchmarkError
from tasks.rotbench import read_output
from tl.calls import Call, render_prompt
from tl.classify import CORRECT, NO_CALL, UNPARSABLE, CallsClassification, classify, classify_calls
from tl.metrics import STAGES, item_stages, single_turn_metrics


def _jsonable(x):
    """`x` as plain JSON values: Calls as their dicts, anything else unknown as its str()."""

    def fallback(o):
        return o.to_dict() if isinstance(o, Call) else str(o)

    return json.loads(json.dumps(x, default=fallback))


def score_item(
    item,
    output: str,
    tokenize=None,
    *,
    bfcl_json_literals: bool = False,
    rotbench_empty_input_ok: bool = False,
) -> dict:
    """One prediction -> its record: id, output, scenario (the benchmark's category), category (the
    prediction's, tl.classify), TS/PI/CF, details, and the call classifications for the error analysis.
    The output is read as the benchmark's own checker reads it (`item.reader`). BFCL matches all its
    calls order-free (a wrong count is never correct); (live_)irrelevance is right without a call,
    live_relevance with any. The flags are the documented deviations from the official checkers."""
    if item.mode == "bfcl":
        parsed = bfcl.decode(output, json_literals=bfcl_json_literals)
        # each gold entry is {name: {param: [acceptable values]}}
        golds = [Call(*next(iter(entry.items()))) for entry in item.gold]
        c = classify_calls(
            parsed, golds, item.tools, mode="bfcl", tokenize=tokenize, bfcl_value_ok=bfcl.value_ok
        )
        if item.category == "live_relevance":  # any call counts (BFCL's relevance check)
            made = parsed.kind == "calls"
            if made:
                category = CORRECT
            elif parsed.kind == "no_call":
                category = NO_CALL
            else:
                category = UNPARSABLE
            c = CallsClassification(category, c.details, [])
            stages = dict.fromkeys(STAGES, made)
        else:
            stages = item_stages(c.category, c.details, per_call=c.per_call, no_call_expected=not golds)
        # the error analysis counts each gold call's classification; with none, the overall one
        calls = [(x.category, x.details) for x in c.per_call] or [(c.category, c.details)]
        per_call = [{"category": x.category, **x.details} for x in c.per_call]
        details = {**c.details, "per_call": per_call}
    else:
        parsed = read_output(output, rotbench_empty_input_ok) if item.reader == "rotbench" else output
        c = classify(parsed, item.gold, item.tools, mode=item.mode, tokenize=tokenize, **item.options)
        stages = item_stages(c.category, c.details)
        calls = [(c.category, c.details)]
        details = c.details
    return {
        "id": item.id,
        "output": output,
        "scenario": item.category,
        "category": c.category,
        **stages,
        "details": _jsonable(details),
        "calls": calls,
    }


def score(items, outputs: dict, tokenize=None, **rules) -> tuple[dict, list]:
    """Every item's output scored -> (metrics, per-item records); `rules`: score_item's flags."""
    missing = [it.id for it in items if it.id not in outputs]
    if missing:
        raise BenchmarkError(
            f"no prediction for {len(missing)} of {len(items)} items (first: {missing[0]!r}); "
            "predictions are matched by item id"
        )
    records = [score_item(it, outputs[it.id], tokenize, **rules) for it in items]
    return single_turn_metrics(records), records


def predict(model, tok, items, prompt_format: str = "project", **kw) -> dict:
    """Greedy predictions for Items -> {id: output text}; `kw`: `complete`'s options."""
    prompts = [render_prompt(it.tools, it.messages, prompt_format=prompt_format) for it in items]
    texts = complete(model, tok, prompts, **kw)
    return {it.id: text for it, text in zip(items, texts)}


def complete(
    model, tok, prompts: list[str], *, batch_size: int = 8, max_new_tokens: int = 256, progress=None
) -> list[str]:
    """Greedy completions of rendered prompts, in order. Prompts are batched by token length, so a
    batch needs little left padding; `progress(k)` is called after each batch with its size."""
    from tl.generate import generate  # torch only when a model runs

    ids = [tok.encode_chat(p) for p in prompts]
    context = getattr(getattr(model, "args", None), "max_position_embeddings", None)
    too_long = sum(len(x) + max_new_tokens > context for x in ids) if context else 0
    if too_long:
        # RoPE still runs past it, but the model never saw such positions
        warnings.warn(
            f"{too_long} of {len(ids)} prompts plus max_new_tokens={max_new_tokens} exceed the model's "
            f"max_position_embeddings ({context})",
            stacklevel=2,
        )
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # shortest first
    texts = [""] * len(ids)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        gen = generate(
            model,
            [ids[i] for i in batch],
            max_new_tokens=max_new_tokens,
            eos_id=tok.eos_id,
            pad_id=tok.pad_id,
            tokenizer=tok,
        )
        for i, text in zip(batch, gen.texts):
            texts[i] = text
        if progress is not None:
            progress(len(batch))
    return texts


def task_executors(unit_name: str):
    """(executor_for(task), close()) for a multi-turn unit: a ToolEyes simulator per task (tool names
    repeat across ToolEyes' groups with other schemas), or for the synthetic split one real Sandbox
    over the whole toolbox (tl.episode checks each call against the task's own tools first)."""
    if unit_name.startswith("tooleyes"):
        from tasks.tooleyes import Simulator

        return (lambda task: Simulator(task.tools)), (lambda: None)
    from tasks.toolbox import TOOLS
    from tl.sandbox import Sandbox

    sandbox = Sandbox(TOOLS)
    return (lambda task: sandbox), sandbox.close


def episode_record(task, episode) -> dict:
    """One task's record: every call's feedback category (DE/CE), whether a final answer came within
    the turn limit (VA), and the transcript."""
    answer = episode.answer
    return {
        "id": task.id,
        "scenario": task.category,
        "turns": len(episode.turns),
        "calls": [c.result.category for c in episode.calls],
        "call_categories": [c.category for c in episode.calls],
        "valid_answer": bool(answer and answer.strip()),
        "answer": answer,
        "outputs": [t.output for t in episode.turns],
        "messages": _jsonable(episode.messages),
    }
