"""LLaMA in one file: the architecture, a KV cache, and HF safetensors checkpoints.

The module tree and parameter names equal transformers' `LlamaForCausalLM`
(`model.embed_tokens`, `model.layers.{i}.self_attn.q_proj`, ..., `model.norm`, `lm_head`), so
`state_dict()` *is* an HF checkpoint and FSDP2 / DCP state-dict tools map 1:1.
RoPE uses HF's rotate-half convention, so HF weights load with no Q/K permutation.
"""

import json
import os
import shutil
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelArgs:
    """Hyper-parameters of a LLaMA model; field names follow HF's `config.json`."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None  # None: = num_attention_heads (MHA); fewer: GQA
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    pad_token_id: int | None = None
    dtype: str = "float32"  # the checkpoint's storage dtype (HF `dtype` / `torch_dtype`)

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                             f"num_key_value_heads={self.num_key_value_heads}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {sorted(_DTYPES)}")

    @classmethod
    def from_hf_config(cls, config: dict, source: str = "config.json") -> "ModelArgs":
        """Reads an HF LLaMA `config.json` dict, in transformers' v4 or v5 form.

        v4 keeps `rope_theta`, `rope_scaling` and `torch_dtype` at top level; v5 nests the rope
        settings in `rope_parameters: {rope_theta, rope_type}` and calls the dtype `dtype`.
        Anything this model does not implement (another architecture, rope scaling, biases,
        another activation) is an error rather than a silently different model.
        """
        if config.get("model_type") != "llama":
            raise ValueError(f"{source}: expected model_type 'llama', found {config.get('model_type')!r}")
        if config.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{source}: expected hidden_act 'silu', found {config['hidden_act']!r}")
        for key in ("attention_bias", "mlp_bias"):
            if config.get(key):
                raise ValueError(f"{source}: {key}=true is not supported (LLaMA has no biases)")
        rope = dict(config.get("rope_parameters") or {})
        legacy_scaling = config.get("rope_scaling") or {}
        for spec in (rope, legacy_scaling):
            rope_type = spec.get("rope_type", spec.get("type", "default"))
            if rope_type != "default":
                raise ValueError(f"{source}: rope type {rope_type!r} is not implemented "
                                 f"(only plain RoPE; found {spec})")
        theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
        dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
        known = {f.name for f in fields(cls)} - {"rope_theta", "dtype"}
        kwargs = {k: v for k, v in config.items() if k in known and v is not None}
        return cls(**kwargs, rope_theta=float(theta), dtype=str(dtype).removeprefix("torch."))

    def to_hf_config(self) -> dict:
        """An HF `config.json` dict that transformers 5.x loads (and v4 readers understand).

        Both rope forms are written: v5 reads `rope_parameters`, v4 reads `rope_theta`; likewise
        `dtype` (v5) and `torch_dtype` (v4).
        """
        config = asdict(self)
        config.update(model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu",
                      attention_bias=False, mlp_bias=False, attention_dropout=0.0,
                      rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
                      torch_dtype=self.dtype)
        return config


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 like HF's LlamaRMSNorm."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # HF normalises in fp32, casts back, then scales; F.rms_norm is one fused kernel on CPU.
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)
        return self.weight * normed


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """RoPE (Su et al.) angles for integer `positions` [B, T] -> cos, sin [B, 1, T, head_dim/2].

    Same arithmetic as HF: inv_freq = 1 / theta^(2i/d) in fp32, angle = position * inv_freq.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32,
                                              device=positions.device) / head_dim))
    angles = positions[:, None, :, None].float() * inv_freq
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: the first and second halves of each head are the (re, im) pairs.

    Equal term by term to HF's `x * cos + rotate_half(x) * sin` with cos/sin duplicated.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class KVCache:
    """Static per-layer key/value buffers [B, n_kv_heads, max_len, head_dim] (gpt-fast style).

    Not a module and not a buffer: it never enters `state_dict()` and FSDP2 never shards it.
    Buffers are allocated on the first write with the dtype/device of the keys, so the cache
    follows whatever compute dtype the model runs in (e.g. bf16 under FSDP2 mixed precision).
    `length` counts the positions filled; `Transformer.forward` advances it.
    """

    def __init__(self, num_layers: int, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Writes this step's k/v [B, H, T, D] and returns all keys/values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions needed, cache holds {self.max_len}")
        if self.keys[layer] is None:
            shape = (k.shape[0], k.shape[1], self.max_len, k.shape[3])
            self.keys[layer] = k.new_zeros(shape)
            self.values[layer] = v.new_zeros(shape)
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = (
            args.num_attention_heads, args.num_key_value_heads, args.head_dim)
        self.q_proj = nn.Linear(args.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(args.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(args.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, args.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, cache: KVCache | None, layer: int):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        # mask is None only when plain causal attention is exact (see Transformer._attention_mask)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           is_causal=mask is None and T > 1 and k.shape[2] == T,
                                           enable_gqa=self.n_kv_heads != self.n_heads)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.up_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.down_proj = nn.Linear(args.intermediate_size, args.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """One pre-norm decoder layer (HF `LlamaDecoderLayer`)."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.self_attn = Attention(args)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.mlp = MLP(args)

    def forward(self, x, cos, sin, mask, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """A LLaMA causal LM; module names mirror HF's `LlamaForCausalLM`, so keys are HF's."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        # A ModuleDict named `model` gives the HF key prefix `model.` with no custom class.
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(args.vocab_size, args.hidden_size),
            layers=nn.ModuleList(Block(args) for _ in range(args.num_hidden_layers)),
            norm=RMSNorm(args.hidden_size, args.rms_norm_eps),
        ))
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)
        self.tie_weights()

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder blocks, e.g. for `fully_shard(block)` on each (not a second registration)."""
        return self.model.layers

    def tie_weights(self):
        """With `tie_word_embeddings`, lm_head uses the very same Parameter as the embedding."""
        if self.args.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def new_cache(self, max_len: int) -> KVCache:
        return KVCache(self.args.num_hidden_layers, max_len)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, return_hidden: bool = False,
                logits_to_keep: int | None = None) -> torch.Tensor:
        """Logits [B, T, vocab] in the compute dtype (callers upcast before log-softmax).

        attention_mask: [B, past + T], 1 = real token, 0 = padding (HF semantics). Positions come
            from it (cumsum - 1), so left-padded rows get the same positions as unpadded ones.
        cache: a `KVCache`; this call appends T positions to it.
        return_hidden: return the final-norm hidden states [B, T, hidden] instead of logits
            (a value head needs them; skips the vocab projection).
        logits_to_keep: only project the last n positions (e.g. 1 for a prefill).
        """
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, past + T):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                                 f"[batch, past + new] = {(B, past + T)}")
            positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]
        else:
            positions = torch.arange(past, past + T, device=input_ids.device).expand(B, T)
        x = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(positions, self.args.head_dim, self.args.rope_theta, x.dtype)
        mask = self._attention_mask(attention_mask, past, T, input_ids.device)
        for i, block in enumerate(self.model.layers):
            x = block(x, cos, sin, mask, cache, i)
        x = self.model.norm(x)
        if cache is not None:
            cache.length += T
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return x if return_hidden else self.lm_head(x)

    @staticmethod
    def _attention_mask(attention_mask, past: int, T: int, device):
        """Boolean [B|1, 1, T, past+T] mask (True = may attend), or None when SDPA's own
        `is_causal` (no past) or no mask at all (a single new token) is exact."""
        if attention_mask is None and (past == 0 or T == 1):
            return None
        keys = torch.arange(past + T, device=device)
        queries = torch.arange(past, past + T, device=device)
        allowed = (keys[None, :] <= queries[:, None])[None, None]
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, None, None, :].bool()
            # A padding query sees no real key; letting it see itself keeps the softmax finite.
            # Its output is never used, and no real query ever attends to a padding key.
            allowed = allowed | (keys[None, :] == queries[:, None])
        return allowed

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, args: ModelArgs, *, seed: int = 0, device="cpu",
                    dtype: torch.dtype | None = None) -> "Transformer":
        """A randomly initialised model, as HF initialises LLaMA: weights ~ N(0, initializer_range),
        norms = 1. `seed` makes it reproducible (a private generator; global RNG untouched)."""
        with torch.device("meta"):
            model = cls(args)
        model.to_empty(device=device)
        model.tie_weights()  # to_empty gives tied params fresh storage each; re-tie
        generator = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    if module is model.lm_head and args.tie_word_embeddings:
                        continue
                    module.weight.normal_(0.0, args.initializer_range, generator=generator)
                elif isinstance(module, RMSNorm):
                    module.weight.fill_(1.0)
        return model.to(dtype or _DTYPES[args.dtype])

    # ---- HF checkpoints ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, dtype: torch.dtype | None = None, device="cpu",
                        tokenizer=None) -> "Transformer":
        """Loads an HF LLaMA checkpoint directory: `config.json` + `model.safetensors` or shards
        listed in `model.safetensors.index.json`.

        The model is built on the meta device and the checkpoint tensors are assigned to it, so
        no second copy is ever made: on CPU with the stored dtype the weights stay memory-mapped
        from the files; a dtype cast or device move happens one tensor at a time.
        Keys and shapes are checked against the model before any data is read. A
        `tokenizer.model` beside the weights (or `tokenizer`, a path or `Tokenizer`) must have
        exactly `vocab_size` pieces.
        """
        path = os.fspath(path)
        config_file = os.path.join(path, "config.json")
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"{config_file}: no config.json (expected an HF checkpoint directory)")
        with open(config_file) as f:
            args = ModelArgs.from_hf_config(json.load(f), source=config_file)
        check_vocab(args.vocab_size, config_file, tokenizer or _beside(path, "tokenizer.model"))
        with torch.device("meta"):
            model = cls(args)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        tied = {"lm_head.weight"} if args.tie_word_embeddings else set()
        state = load_safetensors(path, expected, optional=tied, dtype=dtype or _DTYPES[args.dtype],
                                 device=device)
        if tied:
            head = state.pop("lm_head.weight", None)
            embed = state["model.embed_tokens.weight"]
            if head is not None and not torch.equal(head, embed):
                raise ValueError(f"{path}: tie_word_embeddings is true in config.json but "
                                 f"lm_head.weight differs from model.embed_tokens.weight")
            state["lm_head.weight"] = embed
        model.load_state_dict(state, strict=True, assign=True)
        model.tie_weights()  # assign=True made two Parameters out of the one tensor; re-tie
        model.args.dtype = _dtype_name(model.model.embed_tokens.weight.dtype)
        return model

    def save_pretrained(self, path, max_shard_size: int | str = "5GB", tokenizer=None):
        """Writes `config.json` + safetensors (sharded with an index above `max_shard_size`)
        that `transformers.LlamaForCausalLM.from_pretrained` loads; copies the tokenizer's
        `tokenizer.model` beside them when one is given."""
        state = self.state_dict()
        if self.args.tie_word_embeddings:
            del state["lm_head.weight"]  # HF stores a tied head once, as the embedding
        args = replace(self.args, dtype=_dtype_name(self.model.embed_tokens.weight.dtype))
        save_hf_checkpoint(state, args, path, max_shard_size=max_shard_size, tokenizer=tokenizer)


# ---- checkpoint files --------------------------------------------------------------------------
# Old HF LLaMA checkpoints carry the (derived, non-persistent) RoPE table; HF ignores it too.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def _beside(path: str, name: str) -> str | None:
    file = os.path.join(path, name)
    return file if os.path.isfile(file) else None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_vocab(vocab_size: int, config_file: str, tokenizer) -> None:
    """Raises if the tokenizer (a `.model` path or an object with `vocab_size`) has a vocabulary
    size other than the model's. None means nothing to check."""
    if tokenizer is None:
        return
    if isinstance(tokenizer, (str, os.PathLike)):
        import sentencepiece as spm

        name, size = os.fspath(tokenizer), spm.SentencePieceProcessor(model_file=os.fspath(tokenizer)).vocab_size()
    else:
        name, size = getattr(tokenizer, "model_path", type(tokenizer).__name__), tokenizer.vocab_size
    if size != vocab_size:
        raise ValueError(f"vocab mismatch: tokenizer {name} has {size} pieces but {config_file} "
                         f"says vocab_size={vocab_size}; they must be equal")


def checkpoint_files(path: str) -> dict[str, str]:
    """{tensor name: safetensors file} for a checkpoint directory (single file or index)."""
    from safetensors import safe_open

    single, index = os.path.join(path, "model.safetensors"), os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(single):
        with safe_open(single, framework="pt") as f:
            return {key: single for key in f.keys()}
    if not os.path.isfile(index):
        raise FileNotFoundError(f"{path}: expected model.safetensors or model.safetensors.index.json, "
                                f"found {sorted(os.listdir(path))}")
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
    if missing:
        raise FileNotFoundError(f"{index} lists shard(s) {missing} that do not exist in {path}")
    for shard in shards:  # the index must agree with the files' own headers
        with safe_open(os.path.join(path, shard), framework="pt") as f:
            inside = set(f.keys())
        listed = {k for k, s in weight_map.items() if s == shard}
        if listed - inside:
            raise ValueError(f"{index} places {_some(listed - inside)} in {shard}, "
                             f"which does not contain them")
    return {key: os.path.join(path, shard) for key, shard in weight_map.items()}


def _some(keys, n: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def load_safetensors(path: str, expected: dict[str, tuple], *, optional=frozenset(),
                     dtype: torch.dtype | None = None, device="cpu") -> dict[str, torch.Tensor]:
    """Reads exactly the `expected` {name: shape} tensors (plus any `optional` ones present)
    from a checkpoint directory. Names and shapes are checked from the file headers first;
    then each tensor is memory-mapped and cast/moved on its own (never a full second copy)."""
    from safetensors import safe_open

    files = {k: f for k, f in checkpoint_files(path).items() if not k.endswith(_IGNORED_SUFFIXES)}
    missing = set(expected) - set(files) - set(optional)
    unexpected = set(files) - set(expected)
    problems = []
    if missing:
        problems.append(f"missing keys: {_some(missing)}")
    if unexpected:
        where = sorted({os.path.basename(files[k]) for k in unexpected})
        problems.append(f"unexpected keys (in {', '.join(where)}): {_some(unexpected)}")
    by_file: dict[str, list[str]] = {}
    for key, file in files.items():
        if key in expected:
            by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with safe_open(file, framework="pt") as f:
            for key in keys:
                shape = tuple(f.get_slice(key).get_shape())
                if shape != expected[key]:
                    problems.append(f"{key} in {os.path.basename(file)} has shape {list(shape)}, "
                                    f"the config implies {list(expected[key])}")
    if problems:
        raise ValueError(f"checkpoint {path} does not match its config.json:\n  " + "\n  ".join(problems))
    state = {}
    for file, keys in by_file.items():
        with safe_open(file, framework="pt", device="cpu") as f:
            for key in keys:  # get_tensor maps the file; .to() copies only if dtype/device differ
                state[key] = f.get_tensor(key).to(device=device, dtype=dtype)
    return state


def _parse_size(size: int | str) -> int:
    """5_000_000_000, "5GB" (10^9) or "5GiB" (2^30) -> bytes, as HF reads `max_shard_size`."""
    if isinstance(size, int):
        return size
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    text = size.strip().upper()
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    raise ValueError(f"max_shard_size {size!r}: expected bytes or a string like '5GB' / '500MiB'")


def save_hf_checkpoint(state_dict: dict[str, torch.Tensor], args: ModelArgs, path,
                       max_shard_size: int | str = "5GB", tokenizer=None) -> None:
    """Writes an HF checkpoint directory from a full (unsharded) state dict, e.g. one gathered
    from FSDP2 on rank 0. Tensors are written in key order, a new shard whenever the next one
    would push the current shard past `max_shard_size`."""
    from safetensors.torch import save_file

    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    limit = _parse_size(max_shard_size)
    shards: list[list[str]] = [[]]
    sizes = [0]
    for key, tensor in state_dict.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and sizes[-1] + nbytes > limit:
            shards.append([])
            sizes.append(0)
        shards[-1].append(key)
        sizes[-1] += nbytes
    # Remove the old checkpoint files first: unlinking keeps the mmaps of a model loaded from
    # this very directory valid, whereas rewriting a mapped file in place would not.
    for name in os.listdir(path):
        if name.startswith("model") and (name.endswith(".safetensors") or name.endswith(".index.json")):
            os.remove(os.path.join(path, name))
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    for name, keys in zip(names, shards):
        tensors = {k: state_dict[k].detach().to("cpu").contiguous() for k in keys}
        save_file(tensors, os.path.join(path, name), metadata={"format": "pt"})
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(sizes)},
                 "weight_map": {k: name for name, keys in zip(names, shards) for k in keys}}
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
    config_file = os.path.join(path, "config.json")
    with open(config_file, "w") as f:
        json.dump(args.to_hf_config(), f, indent=2)
    if tokenizer is not None:
        check_vocab(args.vocab_size, config_file, tokenizer)
        source = os.fspath(getattr(tokenizer, "model_path", tokenizer))
        if os.path.abspath(source) != os.path.abspath(os.path.join(path, "tokenizer.model")):
            shutil.copyfile(source, os.path.join(path, "tokenizer.model"))
