"""Peak RSS of `tl.hf.load_hf` on a CodeLlama-7b-shaped random bf16 checkpoint.

    python bench/bench_load_7b.py [--dir /tmp/tl-7b] [--keep]

Writes CodeLlama-7b-hf's own config.json (transformers-4 form: hidden 4096, 32 layers, 32 heads,
intermediate 11008, vocab 32016, rope theta 1e6, bf16) and 2 safetensors shards of random
weights (13.5 GB), streaming one tensor at a time so writing needs little memory. Then, in a
fresh process: load it, and run one 4-token forward (which reads every weight). Prints load
time and RSS (peak, and resident split into file-backed = memory-mapped checkpoint pages and
anonymous = copies) after each. Deletes the checkpoint unless --keep.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

CONFIG = {  # codellama/CodeLlama-7b-hf config.json
    "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 16384,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.33.0.dev0",
    "use_cache": True,
    "vocab_size": 32016,
}


def tensor_shapes(c: dict) -> list[tuple[str, tuple]]:
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    shapes = [("model.embed_tokens.weight", (v, h))]
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,))]
        shapes += [(p + f"self_attn.{x}_proj.weight", (h, h)) for x in "qkvo"]
        shapes += [
            (p + "mlp.gate_proj.weight", (i, h)),
            (p + "mlp.up_proj.weight", (i, h)),
            (p + "mlp.down_proj.weight", (h, i)),
        ]
    return shapes + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def write_shard(file: str, shapes, generator) -> int:
    """A safetensors file written tensor by tensor (header first), never holding more than one."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes:
        size = math.prod(shape) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned
    with open(file, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for _, shape in shapes:
            tensor = torch.empty(shape, dtype=torch.bfloat16).normal_(0.0, 0.02, generator=generator)
            f.write(tensor.view(torch.int16).numpy().tobytes())
    return offset


def write_checkpoint(path: str) -> int:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    shapes = tensor_shapes(CONFIG)
    cut = next(n for n, (name, _) in enumerate(shapes) if name.startswith("model.layers.23."))
    shards = {
        "model-00001-of-00002.safetensors": shapes[:cut],
        "model-00002-of-00002.safetensors": shapes[cut:],
    }
    generator, total = torch.Generator().manual_seed(0), 0
    for file, part in shards.items():
        total += write_shard(os.path.join(path, file), part, generator)
    index = {
        "metadata": {"total_size": total},
        "weight_map": {name: file for file, part in shards.items() for name, _ in part},
    }
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    return total


def memory() -> dict:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if line.startswith(("VmHWM", "RssAnon", "RssFile")))
    return {k: round(int(v.split()[0]) / 2**20, 2) for k, v in fields.items()}  # GiB


def child(path: str) -> None:
    from tl.hf import load_hf

    report = {"baseline": memory()}
    start = time.perf_counter()
    model = load_hf(path)
    report["load_s"] = round(time.perf_counter() - start, 1)
    report["after_load"] = memory()
    report["dtype"] = str(model.model.embed_tokens.weight.dtype)
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(torch.tensor([[1, 319, 2462, 29901]]))
    report["forward_s"] = round(time.perf_counter() - start, 1)
    report["after_forward"] = memory()
    report["logits_finite"] = bool(torch.isfinite(logits.float()).all())
    print(json.dumps(report))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/tl-7b-checkpoint")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint (and reuse it next time)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.dir)
    try:
        if not os.path.isfile(os.path.join(args.dir, "model.safetensors.index.json")):
            start = time.perf_counter()
            total = write_checkpoint(args.dir)
            print(
                f"wrote {total / 1e9:.2f} GB of bf16 weights in 2 shards in {time.perf_counter() - start:.0f} s"
            )
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--dir", args.dir],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        report = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(report, indent=1))
        with open("/proc/meminfo") as f:
            total_ram = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) / 2**20
        print(
            f"peak RSS {report['after_forward']['VmHWM']:.2f} GiB on a {total_ram:.1f} GiB machine "
            f"(after load {report['after_load']['VmHWM']:.2f} GiB: the weights stay memory-mapped)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
