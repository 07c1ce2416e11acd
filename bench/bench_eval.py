"""Evaluation throughput: items/s of `evaluate.py`'s single-turn path (render -> encode -> batched
greedy generation with the KV cache -> parse -> classify -> metrics) on a CPU demo-sized model,
next to references measured in the same process: one item at a time (batch 1), and scoring alone
(no model: what `--predictions` costs).

    python bench/bench_eval.py [--model out/sft/model] [--items 32] [--batch_size 8] \\
        [--max_new_tokens 48]
    python bench/bench_eval.py --benchmark rotbench \\
        --data ../shared/data/RoTBench/First_Turn/clean.json --items 105

Without --model it uses the SFT demo's export when it exists, else a random model of the demo's
shape (train_sft.py preset "demo": vocab 1024, hidden 192, 4 layers, 4 heads) with a tokenizer
trained on the items' own prompts. A random model almost never emits EOS, so nearly every
item generates --max_new_tokens tokens: the worst case; a trained model stops after its call.
Items: the synthetic held-out split (`tasks.synth.generate_heldout`), or the first --items of a
single-turn benchmark (--benchmark, --data).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from tasks import load  # noqa: E402
from tasks.run import predict, score  # noqa: E402
from tasks.synth import generate_heldout, write_jsonl  # noqa: E402
from tl.calls import render_prompt  # noqa: E402
from tl.hf import load_hf  # noqa: E402
from tl.model import ModelArgs, Transformer  # noqa: E402
from tl.tokenizer import load_tokenizer, train_tokenizer  # noqa: E402

DEMO_MODEL = "out/sft/model"


def demo_shaped(items, folder):
    """A random model of the demo's shape and a 1024-piece tokenizer trained on the prompts."""
    texts = [render_prompt(it.tools, it.messages).replace("</s>", "\n") for it in items]
    tok = load_tokenizer(train_tokenizer(texts * 4, os.path.join(folder, "tokenizer.model"), vocab_size=1024))
    args = ModelArgs(
        vocab_size=tok.vocab_size,
        hidden_size=192,
        intermediate_size=4 * 192 * 2 // 3 // 16 * 16,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )
    return Transformer.from_config(args, seed=0).eval(), tok


def timed(fn):
    """(fn(), its wall time in seconds)."""
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model", help=f"HF model directory (default: {DEMO_MODEL} if present, else random demo-shaped)"
    )
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--max_new_tokens", type=int, default=48)
    ap.add_argument(
        "--benchmark", help="a single-turn benchmark instead of the synthetic split (needs --data)"
    )
    ap.add_argument("--data", help="its file or folder")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    with tempfile.TemporaryDirectory() as tmp:
        if args.benchmark:
            items = load(args.benchmark, args.data)[0].items[: args.items]
        else:
            singles, _ = generate_heldout(args.items, 0, seed=123)
            write_jsonl(os.path.join(tmp, "heldout_single.jsonl"), singles)
            items = load("synthetic", tmp)[0].items
        path = args.model
        if not path and os.path.isfile(os.path.join(DEMO_MODEL, "config.json")):
            path = DEMO_MODEL  # the SFT demo's export
        if path:
            tok = load_tokenizer(path)
            model = load_hf(path, tokenizer=tok).eval()
            what = f"{path}"
        else:
            model, tok = demo_shaped(items, tmp)
            what = "random demo-shaped model (no SFT demo export found)"

    n_params = sum(p.numel() for p in model.parameters())
    prompt_tokens = [len(tok.encode_chat(render_prompt(it.tools, it.messages))) for it in items]
    prompt_len = sum(prompt_tokens) / len(items)
    predict(model, tok, items[: args.batch_size], batch_size=args.batch_size, max_new_tokens=4)  # warm-up
    batched, t_batched = timed(
        lambda: predict(model, tok, items, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    )
    _, t_single = timed(lambda: predict(model, tok, items, batch_size=1, max_new_tokens=args.max_new_tokens))
    metrics, t_score = timed(lambda: score(items, batched)[0])

    print(
        f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads "
        "(shared machine: timings are noisy)"
    )
    print(
        f"model: {what}; {n_params / 1e6:.2f}M parameters, {model.args.num_hidden_layers} layers, "
        f"hidden {model.args.hidden_size}"
    )
    print(
        f"items: {len(items)} of {items[0].benchmark}, mean prompt {prompt_len:.0f} tokens, "
        f"max_new_tokens {args.max_new_tokens}"
    )
    rows = [
        (f"generate + score, batch {args.batch_size}", len(items) / (t_batched + t_score)),
        ("generate + score, batch 1", len(items) / (t_single + t_score)),
        ("score only (--predictions)", len(items) / t_score),
    ]
    ref = rows[1][1]  # batch 1
    print(f"{'mode':<32}{'items/s':>10}{'x batch 1':>12}")
    for name, items_per_s in rows:
        print(f"{name:<32}{items_per_s:>10.2f}{items_per_s / ref:>12.1f}")
    note = " (a random model: not meaningful)" if not path else ""
    print(f"metrics of this run{note}: TS {metrics['TS']} PI {metrics['PI']} CF {metrics['CF']}")


if __name__ == "__main__":
    main()
