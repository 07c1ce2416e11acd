"""Ours vs transformers' LlamaForCausalLM on one config, in one run.

    python bench/bench_model.py [--config 20m|smollm2] [--steps 3] [--new_tokens 64] [--threads N]

Configs (fp32, both models hold the same random weights):
- 20m: hidden 512, 8 layers, 8 heads, intermediate 1376, vocab 32016 (untied); batch 4 x 512;
- smollm2: SmolLM2-135M's shape: hidden 576, 30 layers, 9 heads / 3 KV heads, intermediate 1536,
  vocab 49152, tied embeddings, RoPE theta 1e5; batch 4 x 340 (a synthetic trajectory's length).
Printed, each as ours / transformers:
- training step tokens/s: forward + the same cross-entropy + backward + AdamW on every position;
- generation tokens/s at batch 1 and 8 (greedy, 32-token prompt, KV cache, prefill included);
- the train step's achieved FLOP/s as a fraction of a plain fp32 matmul's FLOP/s here;
- peak memory: the rise of peak RSS during 2 train steps / one batch-8 generation, each
  measured in a fresh child process (CPU has no allocator statistics).
Timings alternate ours / theirs call by call; a ratio is the median over those pairs and a
speed the best call, so load from other processes on a shared machine hits both alike. The
1-minute load average is printed before and after: above the CPU count, absolute speeds are
depressed, and the ratios are the figures to read.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tl.generate import generate  # noqa: E402
from tl.model import ModelArgs, Transformer  # noqa: E402

CONFIGS = {
    "20m": (
        ModelArgs(
            vocab_size=32016,
            hidden_size=512,
            intermediate_size=1376,
            num_hidden_layers=8,
            num_attention_heads=8,
            max_position_embeddings=4096,
            rope_theta=1e6,
        ),
        4,
        512,
    ),
    "smollm2": (
        ModelArgs(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            rms_norm_eps=1e-5,
            max_position_embeddings=8192,
            rope_theta=1e5,
            tie_word_embeddings=True,
        ),
        4,
        340,
    ),
}
CONFIG = "20m"  # main() selects --config
ARGS, BATCH, SEQ = CONFIGS[CONFIG]


def build(which: str):
    ours = Transformer.from_config(ARGS, seed=0)
    if which == "ours":
        return ours
    import transformers

    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**ARGS.to_hf_config()))
    # a tied model's lm_head.weight is its embedding: HF lists it, our state dict does not
    hf.load_state_dict(ours.state_dict(), strict=not ARGS.tie_word_embeddings)
    return hf


def logits_of(model, ids):
    out = model(ids)
    return out if torch.is_tensor(out) else out.logits


def train_step_fn(model):
    """One optimizer step; the loss code is shared, so only the model differs."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(3, ARGS.vocab_size, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    targets = torch.cat([ids[:, 1:], torch.full((BATCH, 1), -100)], 1)  # no shifted-logits copy
    model.train()

    def step():
        logits = logits_of(model, ids)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def generate_fn(model, batch: int, new_tokens: int):
    prompts = torch.randint(3, ARGS.vocab_size, (batch, 32), generator=torch.Generator().manual_seed(1))
    if isinstance(model, Transformer):

        def run():
            out = generate(model, prompts.tolist(), max_new_tokens=new_tokens, eos_id=-1, pad_id=0)
            assert all(len(t) == new_tokens for t in out.tokens)
    else:
        import transformers

        config = transformers.GenerationConfig(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=2,
            pad_token_id=0,
        )

        def run():
            model.eval()
            with torch.no_grad():
                out = model.generate(
                    prompts, attention_mask=torch.ones_like(prompts), generation_config=config
                )
            assert out.shape[1] == 32 + new_tokens

    return run


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # time the kernels, not their launch
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def alternate(ours, theirs, repeats: int):
    """(best seconds of ours, best of theirs, median over pairs of theirs / ours), calling
    the two in turn after one warm-up each."""
    ours(), theirs()
    pairs = [(timed(ours), timed(theirs)) for _ in range(repeats)]
    return (min(p[0] for p in pairs), min(p[1] for p in pairs), statistics.median(t / o for o, t in pairs))


def train_flops_per_step() -> float:
    """6 x (matmul parameters) x tokens + causal attention (QK^T and AV: 2 x 2 x T^2 x D per
    sequence and layer forward, halved by causality, x3 for forward + backward)."""
    a = ARGS
    per_layer = (
        a.hidden_size * a.head_dim * (a.num_attention_heads * 2 + a.num_key_value_heads * 2)
        + 3 * a.hidden_size * a.intermediate_size
    )
    matmul_params = a.num_hidden_layers * per_layer + a.vocab_size * a.hidden_size  # the output layer
    attention = 3 * 2 * BATCH * SEQ * SEQ * a.num_attention_heads * a.head_dim * a.num_hidden_layers
    return 6 * matmul_params * BATCH * SEQ + attention


def matmul_flops_per_s(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / min(timed(lambda: a @ b) for _ in range(5))


def rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def child_peak_memory(which: str, task: str, new_tokens: int) -> None:
    """(in a fresh process) prints the rise of peak RSS over the model's resident size."""
    import transformers  # noqa: F401  (imported by both children: same baseline)

    model = build(which)
    fn = train_step_fn(model) if task == "train" else generate_fn(model, 8, new_tokens)
    before = rss_mb("VmRSS")
    fn()
    fn()
    print(json.dumps({"peak_rise_mb": rss_mb("VmHWM") - before}))


def peak_memory(which: str, task: str, new_tokens: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            which,
            task,
            "--new_tokens",
            str(new_tokens),
            "--config",
            CONFIG,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_rise_mb"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="20m", help="the model shape (see above)")
    ap.add_argument("--steps", type=int, default=3, help="measured repeats per model (after a warm-up)")
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global ARGS, BATCH, SEQ, CONFIG
    ARGS, BATCH, SEQ = CONFIGS[args.config]
    CONFIG = args.config
    torch.set_num_threads(args.threads)
    if args.child:
        return child_peak_memory(*args.child, args.new_tokens)

    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; config {ARGS.hidden_size}h x "
        f"{ARGS.num_hidden_layers}L, vocab {ARGS.vocab_size}{' tied' if ARGS.tie_word_embeddings else ''}, "
        f"batch {BATCH} x {SEQ}, fp32",
        flush=True,
    )
    models = {"ours": build("ours"), "hf": build("transformers")}
    n_params = sum(p.numel() for p in models["ours"].parameters())
    output_layer = ARGS.vocab_size * ARGS.hidden_size
    print(f"parameters: {n_params / 1e6:.1f}M (output layer {output_layer / 1e6:.1f}M)", flush=True)

    ours, theirs = models["ours"], models["hf"]
    train = alternate(train_step_fn(ours), train_step_fn(theirs), args.steps)
    tokens = BATCH * SEQ
    print(
        f"train step tok/s     ours {tokens / train[0]:7.0f}   transformers {tokens / train[1]:7.0f}"
        f"   ratio {train[2]:.2f}x",
        flush=True,
    )
    for batch in (1, 8):
        gen = alternate(
            generate_fn(ours, batch, args.new_tokens), generate_fn(theirs, batch, args.new_tokens), args.steps
        )
        new = batch * args.new_tokens
        print(
            f"decode b={batch} tok/s     ours {new / gen[0]:7.1f}   transformers {new / gen[1]:7.1f}"
            f"   ratio {gen[2]:.2f}x",
            flush=True,
        )
    peak = matmul_flops_per_s()
    flops = train_flops_per_step()
    for seconds, label in ((train[0], "ours"), (train[1], "transformers")):
        print(
            f"train FLOP/s {label:12s} {flops / seconds / 1e9:6.1f} GFLOP/s = "
            f"{flops / seconds / peak:.2f} of a plain 2048^3 matmul ({peak / 1e9:.1f} GFLOP/s)",
            flush=True,
        )
    del models, ours, theirs
    for task in ("train", "generate"):
        mb = [peak_memory(which, task, args.new_tokens) for which in ("ours", "transformers")]
        what = "2 train steps" if task == "train" else "generation at batch 8"
        print(f"peak RSS rise, {what:21s} ours {mb[0]:7.0f} MB   transformers {mb[1]:7.0f} MB")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
