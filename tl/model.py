"""LLaMA in one file: the architecture and a KV cache.

Module names equal transformers' `LlamaForCausalLM` (`model.layers.{i}.self_attn.q_proj`, ...,
`lm_head`), so `state_dict()` *is* an HF checkpoint (file I/O: tl/hf.py), and RoPE is HF's
rotate-half convention, so HF weights load with no Q/K permutation.

Shapes in the comments: B batch, T new positions, S = past + T positions attended to,
D hidden size, H query heads, K key/value heads, d head dim, V vocabulary, N selected positions.
"""

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False  # True: the output layer is the embedding matrix (SmolLM, LLaMA-3.2)
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    pad_token_id: int | None = None
    dtype: str = "float32"  # the checkpoint's storage dtype (HF `dtype` / `torch_dtype`)

    def __post_init__(self):
        self.num_key_value_heads = self.num_key_value_heads or self.num_attention_heads
        self.head_dim = self.head_dim or self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {sorted(DTYPES)}")

    @classmethod
    def from_hf_config(cls, config: dict, source: str = "config.json") -> "ModelArgs":
        """An HF LLaMA `config.json` dict, transformers v4 (`rope_theta`, `torch_dtype`) or v5
        (`rope_parameters`, `dtype`); what this model does not implement is an error."""
        if config.get("model_type") != "llama":
            raise ValueError(f"{source}: expected model_type 'llama', found {config.get('model_type')!r}")
        activation = config.get("hidden_act", "silu")
        if activation != "silu":
            raise ValueError(f"{source}: expected hidden_act 'silu', found {activation!r}")
        for key in ("attention_bias", "mlp_bias"):
            if config.get(key):
                raise ValueError(f"{source}: {key}=true is not supported (LLaMA has no biases)")
        rope = dict(config.get("rope_parameters") or {})
        for spec in (rope, config.get("rope_scaling") or {}):
            rope_type = spec.get("rope_type", spec.get("type", "default"))
            if rope_type != "default":
                raise ValueError(
                    f"{source}: rope type {rope_type!r} is not implemented (only plain RoPE; found {spec})"
                )

        theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
        dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
        known = {f.name for f in fields(cls)} - {"rope_theta", "dtype"}
        kwargs = {k: v for k, v in config.items() if k in known and v is not None}
        return cls(**kwargs, rope_theta=float(theta), dtype=str(dtype).removeprefix("torch."))

    def to_hf_config(self) -> dict:
        """A `config.json` dict that transformers 5 loads; v4 keys (`rope_theta`, `torch_dtype`) too."""
        return {
            **asdict(self),
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "attention_dropout": 0.0,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
            "torch_dtype": self.dtype,
        }


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # As HF: normalise in fp32, cast back, then scale (F.rms_norm is one fused kernel on CPU).
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """RoPE angles of `positions` [B, T] -> cos, sin [B, 1, T, d/2], as HF (fp32 inv_freq)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim
    inv_freq = 1.0 / (theta**exponents)  # [d/2]
    angles = positions[:, None, :, None].float() * inv_freq  # [B, 1, T, d/2]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on x [B, heads, T, d]: the two halves of each head are the (re, im)
    pairs (HF's convention)."""
    x1, x2 = x.chunk(2, dim=-1)  # [B, heads, T, d/2] each
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class KVCache:
    """Static per-layer key/value buffers [B, K, max_len, d] (gpt-fast style). Not a module, so
    never in `state_dict()` nor sharded; buffers take the dtype/device of the first keys written
    (the compute dtype). `length`: positions filled (`Transformer.forward` advances it)."""

    def __init__(self, num_layers: int, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Writes this step's k, v [B, K, T, d]; returns all keys and values so far [B, K, S, d]."""
        start = self.length
        end = start + k.shape[2]
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
        self.n_heads = args.num_attention_heads
        self.n_kv_heads = args.num_key_value_heads
        self.head_dim = args.head_dim
        self.q_proj = nn.Linear(args.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(args.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(args.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, args.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, cache: KVCache | None, layer: int):
        B, T, _ = x.shape  # x [B, T, D]
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, d]
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, K, T, d]
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, K, T, d]
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, K, S, d]
        # mask is None only where plain causal attention is exact (see Transformer._attention_mask)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=mask is None and T > 1 and k.shape[2] == T,
            enable_gqa=self.n_kv_heads != self.n_heads,  # each K/V head serves H / K query heads
        )  # [B, H, T, d]
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))  # [B, T, D]


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.up_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.down_proj = nn.Linear(args.intermediate_size, args.hidden_size, bias=False)

    def forward(self, x):  # [B, T, D] -> [B, T, intermediate] -> [B, T, D]
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """One pre-norm decoder layer (HF `LlamaDecoderLayer`)."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.self_attn = Attention(args)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.mlp = MLP(args)

    def forward(self, x, cos, sin, mask, cache, layer):  # [B, T, D] -> [B, T, D]
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """A LLaMA causal LM with HF's module names (so its keys are HF's). With tied embeddings
    there is no `lm_head` module: the output layer reads `model.embed_tokens.weight`, so the
    state dict holds the matrix once, as HF's tied checkpoints do."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        # A ModuleDict named `model` gives the HF key prefix `model.` with no custom class.
        self.model = nn.ModuleDict(
            dict(
                embed_tokens=nn.Embedding(args.vocab_size, args.hidden_size),
                layers=nn.ModuleList(Block(args) for _ in range(args.num_hidden_layers)),
                norm=RMSNorm(args.hidden_size, args.rms_norm_eps),
            )
        )
        if not args.tie_word_embeddings:
            self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)

    @property
    def layers(self) -> nn.ModuleList:  # the decoder blocks, for `fully_shard(block)` on each
        return self.model.layers

    def output_weight(self) -> torch.Tensor:
        """The output layer's [V, D] matrix: `lm_head`'s, or the embedding when tied."""
        if self.args.tie_word_embeddings:
            return self.model.embed_tokens.weight
        return self.lm_head.weight

    def new_cache(self, max_len: int) -> KVCache:
        return KVCache(self.args.num_hidden_layers, max_len)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
        logits_to_keep: int | None = None,
        logits_at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, V] in the compute dtype (or, `return_hidden`, the final-norm hidden
        states [B, T, D]) of input_ids [B, T].

        Only some positions, when the caller needs no more (the output layer is the largest
        matmul of a small model with a large vocabulary): `logits_to_keep` n -> the last n
        positions [B, n, V]; `logits_at` (bool [B, T]) -> the selected positions, flattened in
        row-major order [N, V].

        attention_mask [B, past + T]: 1 = real token (HF semantics); positions are its cumsum - 1,
        so a left-padded row is computed exactly as if alone. `cache` gets these T positions appended.
        """
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, past + T):
                raise ValueError(
                    f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                    f"[batch, past + new] = {(B, past + T)}"
                )
            positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]  # [B, T]
        else:
            positions = torch.arange(past, past + T, device=input_ids.device).expand(B, T)

        x = self.model.embed_tokens(input_ids)  # [B, T, D]
        cos, sin = rope_cos_sin(positions, self.args.head_dim, self.args.rope_theta, x.dtype)
        mask = self._attention_mask(attention_mask, past, T, input_ids.device)  # [B|1, 1, T, S] or None
        for i, block in enumerate(self.model.layers):
            x = block(x, cos, sin, mask, cache, i)
        x = self.model.norm(x)  # [B, T, D]
        if cache is not None:
            cache.length += T

        if logits_to_keep:
            x = x[:, -logits_to_keep:]  # [B, n, D]
        if logits_at is not None:
            x = x[logits_at]  # [N, D]
        if return_hidden:
            return x
        return F.linear(x, self.output_weight())  # [..., V]

    @staticmethod
    def _attention_mask(attention_mask, past: int, T: int, device):
        """Boolean [B|1, 1, T, past+T] (True = may attend), or None where SDPA's `is_causal` (no
        past) or no mask (one new token) is exact."""
        if attention_mask is None and (past == 0 or T == 1):
            return None
        keys = torch.arange(past + T, device=device)  # [S]
        queries = torch.arange(past, past + T, device=device)  # [T]
        allowed = (keys[None, :] <= queries[:, None])[None, None]  # causal: [1, 1, T, S]
        if attention_mask is not None:
            # A padding query sees no real key; letting it see itself keeps the softmax finite.
            # Its output is never used, and no real query attends to a padding key.
            not_padding = attention_mask[:, None, None, :].bool()  # [B, 1, 1, S]
            itself = keys[None, :] == queries[:, None]  # [T, S]
            allowed = (allowed & not_padding) | itself  # [B, 1, T, S]
        return allowed

    @classmethod
    def from_config(cls, args: ModelArgs, *, seed: int = 0, device="cpu", dtype: torch.dtype | None = None):
        """A random model initialised as HF does (N(0, initializer_range), norms 1) from a private
        generator seeded with `seed`."""
        with torch.device("meta"):
            model = cls(args)
        model.to_empty(device=device)
        generator = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.normal_(0.0, args.initializer_range, generator=generator)
                elif isinstance(module, RMSNorm):
                    module.weight.fill_(1.0)
        return model.to(dtype or DTYPES[args.dtype])
