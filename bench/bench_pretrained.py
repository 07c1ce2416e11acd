"""The pretrained recipe's steps, ours against transformers on SmolLM2-135M's shape, in one process.

    python bench/bench_pretrained.py [--model out/smollm2] [--repeats 3] [--threads N]
    python bench/bench_pretrained.py --device cuda --model ""     # on a GPU (bench/gpu.sh), random weights

Weights: the converted SmolLM2 directory (random weights of its shape if it is absent; speed does not
depend on the values). Data: 16 synthetic trajectories (`python -m tasks.synth`, the smol preset's
shares), tokenised as the recipe does (MAE + PKT weights). Printed, ours / transformers, each a median
ratio over interleaved pairs (`bench_model.alternate`; load from other processes hits both alike):
- SFT step, batch 4: forward, weighted loss, backward, AdamW. Ours computes logits only where the
  weight is not 0; transformers computes them everywhere (its forward has no such option for a
  position mask). Both in fp32, and both under bf16 autocast (fp32 master weights);
- PPO update, batch 8 prompt + 24-token response: the actor's log-probs of the response (ours: the
  last R + 1 positions' logits; transformers: all positions), the clipped loss, backward, AdamW;
- PPO rollout: greedy generation of 24 tokens for 8 left-padded prompts of ~300 tokens, KV cache
  (transformers' `generate`), fp32 and bf16 autocast.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_model

import torch  # noqa: E402
from bench_model import CONFIGS, alternate  # noqa: E402

from tasks.synth import generate as synthesize  # noqa: E402
from tasks.trajectories import validate_record  # noqa: E402
from tl import ppo  # noqa: E402
from tl.dist import cpu_has_bf16  # noqa: E402
from tl.generate import generate  # noqa: E402
from tl.hf import load_hf  # noqa: E402
from tl.model import Transformer  # noqa: E402
from tl.sft import build_samples, collate, weighted_token_loss  # noqa: E402
from tl.tokenizer import load_tokenizer, train_bpe_tokenizer  # noqa: E402

SMOLLM2 = CONFIGS["smollm2"][0]  # SmolLM2-135M's shape (bench_model.py)


def models(path: str | None, device: str):
    """(ours, transformers') with the same weights, fp32, on `device`."""
    import transformers

    if path:
        ours = load_hf(path, dtype=torch.float32)
        theirs = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    else:
        ours = Transformer.from_config(SMOLLM2, seed=0)
        theirs = transformers.LlamaForCausalLM(transformers.LlamaConfig(**SMOLLM2.to_hf_config()))
        theirs.load_state_dict(ours.state_dict(), strict=False)  # tied: lm_head is the embedding
    return ours.to(device), theirs.to(device)


def logits_of(model, ids, mask, keep=None):
    if isinstance(model, Transformer):
        return model(ids, attention_mask=mask, logits_at=keep)
    out = model(ids, attention_mask=mask).logits
    return out if keep is None else out[keep]


def sft_step_fn(model, batch, bf16: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    keep = batch["weights"] > 0  # [B, T]
    normaliser = batch["weights"].sum()

    def step():
        with torch.autocast(keep.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = logits_of(model, batch["input_ids"], batch["attention_mask"], keep)  # [N, V]
            loss = weighted_token_loss(logits, batch["targets"][keep], batch["weights"][keep], normaliser)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    return step


def ppo_update_fn(model, ids, attention, mask, bf16: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    R = mask.shape[1]
    advantages = torch.randn(mask.shape, generator=torch.Generator().manual_seed(0)).to(ids.device)

    def step():
        with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=bf16):
            if isinstance(model, Transformer):
                last = model(ids, attention_mask=attention, logits_to_keep=R + 1)
            else:
                last = model(ids, attention_mask=attention).logits  # every position
            logits = ppo.shift_to_response(last[:, -(R + 1) :], 1)  # [B, R, V]
            logp = ppo.token_logprobs(logits, ids[:, -R:])
            loss, _ = ppo.policy_loss(logp, logp.detach(), advantages, mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    return step


def rollout_fn(model, prompts: list[list[int]], pad_id: int, bf16: bool):
    """Greedy generation of 24 new tokens for the prompts, with a KV cache."""
    new = 24
    device = next(model.parameters()).device
    if isinstance(model, Transformer):

        def run():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                generate(model, prompts, max_new_tokens=new, eos_id=-1, pad_id=pad_id)

        return run
    import transformers

    ids, attention, _ = ppo.pack(prompts, [[] for _ in prompts], pad_id)  # left-padded prompts
    ids, attention = (
        ids[:, :-1].to(device),
        attention[:, :-1].to(device),
    )  # pack adds one response slot: drop it
    config = transformers.GenerationConfig(
        max_new_tokens=new, min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=pad_id
    )

    def run():
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model.generate(ids, attention_mask=attention, generation_config=config)

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="out/smollm2" if os.path.isdir("out/smollm2") else None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    args.model = args.model or None  # --model "": random weights
    torch.set_num_threads(args.threads)
    import transformers

    ours, theirs = models(args.model, args.device)
    records = [validate_record(r) for r in synthesize(16, seed=1, no_tool_share=0.1, parallel_share=0.1)]
    if args.model:
        tok = load_tokenizer(args.model)
    else:  # random weights: any tokenizer of the right kind gives the same shapes' costs
        texts = [m.get("content") or "" for r in records for m in r["messages"]]
        tok = load_tokenizer(train_bpe_tokenizer(texts * 20, tempfile.mkdtemp(), vocab_size=2000))
    samples, _ = build_samples(tok, records, max_seq_len=1024)
    samples.sort(key=lambda s: len(s.input_ids))
    batch = collate(samples[6:10], tok.pad_id, args.device)  # 4 trajectories of middling length
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
        f"device {args.device}, cpu bf16 {cpu_has_bf16()}; weights {args.model or 'random'}; "
        f"SFT batch {tuple(batch['input_ids'].shape)}, "
        f"{int((batch['weights'] > 0).sum())} weighted positions",
        flush=True,
    )
    for bf16 in (False, True):
        o, t, ratio = alternate(
            sft_step_fn(ours, batch, bf16), sft_step_fn(theirs, batch, bf16), args.repeats
        )
        print(
            f"SFT step   {'bf16' if bf16 else 'fp32'}  ours {o:6.2f} s  transformers {t:6.2f} s  ratio {ratio:.2f}x",
            flush=True,
        )

    prompts = [s.input_ids[:300] for s in samples[:8]]
    responses = [s.input_ids[300:324] for s in samples[8:16]]
    ids, attention, mask = (t.to(args.device) for t in ppo.pack(prompts, responses, tok.pad_id))
    for bf16 in (False, True):
        o, t, ratio = alternate(
            ppo_update_fn(ours, ids, attention, mask, bf16),
            ppo_update_fn(theirs, ids, attention, mask, bf16),
            args.repeats,
        )
        print(
            f"PPO update {'bf16' if bf16 else 'fp32'}  ours {o:6.2f} s  transformers {t:6.2f} s  ratio {ratio:.2f}x",
            flush=True,
        )
    for bf16 in (False, True):
        o, t, ratio = alternate(
            rollout_fn(ours, prompts, tok.pad_id, bf16),
            rollout_fn(theirs, prompts, tok.pad_id, bf16),
            args.repeats,
        )
        print(
            f"PPO rollout {'bf16' if bf16 else 'fp32'} ours {o:6.2f} s  transformers {t:6.2f} s  ratio {ratio:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
