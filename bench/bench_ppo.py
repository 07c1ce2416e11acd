"""PPO throughput on the CPU demo: rollout tokens/s and the share of wall time spent generating.

    torchrun --standalone --nproc_per_node=2 bench/bench_ppo.py          # the demo's setting
    python bench/bench_ppo.py --steps 4 -- --micro_batch 8               # one process; flags after --
                                                                          # go to train_ppo.py

Runs `--steps` PPO steps of train_ppo.py's demo preset (or whatever train_ppo flags follow `--`)
from the SFT demo export, after one warm-up step, and prints per-phase wall time: generation
(KV-cached `tl.generate`), scoring (old/reference log-probs and values, one forward each) and
the update (actor + critic forward/backward/AdamW). Nothing is written. Timings on a shared
machine are noisy: compare the shares, not the absolute numbers, across runs.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import train_ppo  # noqa: E402
from tl import dist as D  # noqa: E402
from tl.tokenizer import load_tokenizer  # noqa: E402
from tl.training import epoch_batches, micro_batches  # noqa: E402


def main():
    argv = sys.argv[1:]
    # this script's flags, then after "--" train_ppo.py's
    if "--" in argv:
        split = argv.index("--")
        ours, rest = argv[:split], argv[split + 1 :]
    else:
        ours, rest = argv, []
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    bench = p.parse_args(ours)
    args = train_ppo.parse_args(rest)
    args.score_temperature = args.temperature or 1.0
    info = D.init_distributed(args.device)
    torch.manual_seed(args.seed)
    tok = load_tokenizer(args.sft)
    prompts, lengths = train_ppo.load_prompts(args, tok, lambda *a: None)
    actor, reference, critic, opt_actor, opt_critic = train_ppo.build_models(args, info, tok, bf16=False)
    batches = epoch_batches(lengths, args.batch_size, args.seed, 0, bucket_batches=1)  # as train_ppo batches
    phases = torch.zeros(4, dtype=torch.float64)  # gen, score, train seconds; response tokens
    for step in range(bench.steps + 1):  # step 0 warms up (allocator, first FSDP all-gathers)
        mine = micro_batches(batches[step % len(batches)], info.rank, info.world_size, args.micro_batch)
        t0 = time.perf_counter()
        rollouts, gen_time, _ = train_ppo.collect(
            (actor, reference, critic), tok, prompts, mine, step, args, info, False
        )
        t1 = time.perf_counter()
        train_ppo.ppo_step(rollouts, actor, critic, opt_actor, opt_critic, args, info, bf16=False)
        t2 = time.perf_counter()
        if step:
            tokens = sum(b.response_mask.sum().item() for b in rollouts)
            score_time = t1 - t0 - gen_time  # collect's time other than generation
            phases += torch.tensor([gen_time, score_time, t2 - t1, tokens], dtype=torch.float64)
    tokens = D.all_reduce_sum(phases[3:], info).item()  # over ranks; times are rank 0's
    gen, score, train = phases[:3].tolist()
    total = gen + score + train
    if info.is_main:
        n_params = sum(p.numel() for p in actor.parameters())
        sampling = "greedy" if not args.temperature else f"T={args.temperature}"
        print(
            f"PPO bench: {n_params / 1e6:.2f}M-parameter model from {args.sft}, {info.world_size} rank(s) on "
            f"{info.device}, {bench.steps} steps of {args.batch_size} prompts "
            f"(micro-batch {args.micro_batch}), {sampling}, <= {args.max_new_tokens} new tokens, "
            f"torch threads per rank {torch.get_num_threads()}"
        )
        per_prompt = tokens / (bench.steps * args.batch_size)
        print(f"  response tokens        {tokens:.0f} ({per_prompt:.1f} per prompt)")
        print(f"  rollout tokens/s       {tokens / gen:.1f}  (generation only, all ranks)")
        print(f"  PPO tokens/s           {tokens / total:.1f}  (whole step)")
        print(f"  generation             {gen:7.2f} s  {gen / total:6.1%}")
        print(f"  scoring (3 forwards)   {score:7.2f} s  {score / total:6.1%}")
        print(f"  update (actor+critic)  {train:7.2f} s  {train / total:6.1%}")
    D.close_distributed()


if __name__ == "__main__":
    main()
