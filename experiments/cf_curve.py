"""Content filling (CF) against training steps for the demo-sized model, in one process.

    python experiments/cf_curve.py --name B3 --n 8000 --steps 1800 --eval_every 300

Generates `--n` synthetic trajectories (seed `--seed`) and 100 fresh held-out single-turn items
(generator seed + 1000), trains a tokenizer and a small LLaMA with MAE + PKT (the SFT loss of
tl/sft.py, one process, batch `--batch`, cosine with 10% warm-up to 0.1 x lr), and every
`--eval_every` steps prints greedy TS / PI / CF on the items. `--short_first` is the fraction of
steps on the shortest samples (tl.sft.short_first_batch); `--space_pieces` makes every space its
own token, so a value tokenises alike after a space (the question) and after a quote (the call).
Writes OUT/NAME/log.jsonl and the predictions of each evaluation. docs/MEASUREMENTS.md, "Demo".
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import tasks.synth as S  # noqa: E402
from tasks.run import predict, score  # noqa: E402
from tasks.synthetic import load_file  # noqa: E402
from tl.calls import EOS_MARK, render_prompt  # noqa: E402
from tl.model import ModelArgs, Transformer  # noqa: E402
from tl.sft import build_samples, collate, short_first_batch, short_first_pool, weighted_token_loss  # noqa: E402
from tl.tokenizer import SentencePieceTokenizer, train_tokenizer  # noqa: E402
from tl.training import epoch_batches, lr_at, param_groups  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--name", required=True)
ap.add_argument("--out", default="out/cf_curve")
ap.add_argument("--n", type=int, default=8000)
ap.add_argument("--steps", type=int, default=1000)
ap.add_argument("--lr", type=float, default=3e-3)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--hidden", type=int, default=192)
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--max_tools", type=int, default=S.MAX_TOOLS)
ap.add_argument("--short_first", type=float, default=0.3)
ap.add_argument("--space_pieces", action="store_true")
ap.add_argument("--eval_every", type=int, default=150)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--threads", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
out = Path(a.out) / a.name
out.mkdir(parents=True, exist_ok=True)
S.MAX_TOOLS = a.max_tools
t0 = time.time()
records = S.generate(a.n, seed=a.seed)
singles, _ = S.generate_heldout(
    100, 0, seed=a.seed + 1000, exclude_queries=[r["messages"][0]["content"] for r in records]
)
S.write_jsonl(str(out / "heldout_single.jsonl"), singles)
items = load_file(str(out / "heldout_single.jsonl")).items
texts = [
    p
    for r in records
    for p in render_prompt(r["tools"], r["messages"], add_generation_prompt=False).split(EOS_MARK)
]
train_tokenizer(
    texts,
    out / "tok.model",
    vocab_size=1024,
    **({"user_defined_symbols": ["▁▁▁▁", "▁"]} if a.space_pieces else {}),
)
tok = SentencePieceTokenizer(out / "tok.model")
samples, _ = build_samples(tok, records, max_seq_len=1024)
lengths = [len(s.input_ids) for s in samples]
model = Transformer(
    ModelArgs(
        vocab_size=tok.vocab_size,
        hidden_size=a.hidden,
        intermediate_size=4 * a.hidden * 2 // 3 // 16 * 16,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )
)
opt = torch.optim.AdamW(param_groups(model, 0.01), lr=a.lr, betas=(0.9, 0.95))
per_epoch, short_steps = len(samples) // a.batch, int(a.short_first * a.steps)
pool = short_first_pool(lengths, a.batch)
log = open(out / "log.jsonl", "w")
model.train()
for step in range(a.steps):
    epoch, index = divmod(step, per_epoch)
    batch = (
        short_first_batch(pool, a.batch, a.seed, step)
        if step < short_steps
        else epoch_batches(lengths, a.batch, a.seed, epoch)[index]
    )
    mb = collate([samples[i] for i in batch], tok.pad_id)
    loss = weighted_token_loss(
        model(mb["input_ids"], attention_mask=mb["attention_mask"]),
        mb["targets"],
        mb["weights"],
        mb["weights"].sum(),
    )
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for g in opt.param_groups:
        g["lr"] = lr_at(step, a.steps, a.lr, int(0.1 * a.steps), 0.1, "cosine")
    opt.step()
    opt.zero_grad(set_to_none=True)
    if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
        model.eval()
        with torch.no_grad():
            outputs = predict(model, tok, items, batch_size=16, max_new_tokens=64)
        metrics, _ = score(items, outputs)
        model.train()
        row = {
            "step": step + 1,
            "TS": metrics["TS"],
            "PI": metrics["PI"],
            "CF": metrics["CF"],
            "s": round(time.time() - t0),
        }
        print(a.name, row, flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()
        with open(out / f"predictions_{step + 1}.jsonl", "w") as f:
            f.writelines(json.dumps({"id": it.id, "output": outputs[it.id]}) + "\n" for it in items)
