"""Generation: greedy equals transformers' generate, the cache equals recomputation, sampling
is seeded and its log-probs are right, EOS ends rows, FSDP2 ranks stay in step."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from conftest import hf_llama_like, left_pad

from tl.generate import generate, sample_next

PROMPTS = [[1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49], [1, 60, 61], [1, 70, 71, 72, 73, 74, 75]]


@pytest.fixture
def model(make_tiny_model):
    # std 0.1 weights: peaked next-token distributions, so greedy choices have clear margins
    return make_tiny_model(seed=11, initializer_range=0.1, rope_theta=1e6)


def full_recompute_logits(model, prompts, new_tokens):
    """Logits of prompt + generated tokens in one left-padded forward, at the positions that
    predicted each generated token: [row][step] -> [vocab]."""
    ids, mask = left_pad([p + t for p, t in zip(prompts, new_tokens)], pad_id=0)
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).float()
    width = ids.shape[1]
    return [logits[row, width - len(t) - 1 : width - 1] for row, t in enumerate(new_tokens)]


def test_greedy_equals_hf_generate_on_left_padded_batch(model):
    transformers = pytest.importorskip("transformers")
    ours = generate(model, PROMPTS, max_new_tokens=40, eos_id=2, pad_id=0)
    assert all(len(t) == 40 for t in ours.tokens)
    ids, mask = left_pad(PROMPTS, pad_id=0)
    hf = hf_llama_like(model)
    config = transformers.GenerationConfig(max_new_tokens=40, do_sample=False, eos_token_id=2, pad_token_id=0)
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=mask, generation_config=config)[:, ids.shape[1] :]
    assert ours.tokens == theirs.tolist()
    assert len({tuple(t) for t in ours.tokens}) == 3  # rows really differ


def test_cached_decoding_equals_full_recomputation(model):
    out = generate(model, PROMPTS, max_new_tokens=24, eos_id=2, pad_id=0)
    for row, logits in enumerate(full_recompute_logits(model, PROMPTS, out.tokens)):
        assert logits.argmax(-1).tolist() == out.tokens[row]


def test_sampling_is_seeded(model):
    kwargs = dict(max_new_tokens=16, eos_id=-1, pad_id=0, temperature=1.3)
    a, b = generate(model, PROMPTS, seed=7, **kwargs), generate(model, PROMPTS, seed=7, **kwargs)
    c = generate(model, PROMPTS, seed=8, **kwargs)
    assert a.tokens == b.tokens and a.tokens != c.tokens


def test_sample_next_hand_example():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    generator = torch.Generator().manual_seed(0)
    for T in (1.0, 2.0):  # drawn from softmax(logits / T): at T = 2, proportional to sqrt(p)
        tokens = torch.tensor([int(sample_next(logits, T, generator)) for _ in range(2000)])
        expected = torch.softmax(logits[0] / T, -1).tolist()
        for k, p in enumerate(expected):
            assert abs((tokens == k).float().mean().item() - p) < 0.04
    assert sample_next(logits, 0.0).item() == 0  # greedy


def test_eos_ends_a_row_and_the_model_mode_is_restored(model):
    greedy = generate(model, PROMPTS, max_new_tokens=12, eos_id=-1, pad_id=0)
    eos = greedy.tokens[1][4]  # pretend the 5th token of row 1 is EOS
    model.train()
    out = generate(model, PROMPTS, max_new_tokens=12, eos_id=eos, pad_id=0)
    assert model.training
    row = greedy.tokens[1]
    assert out.tokens[1] == row[: row.index(eos) + 1]
    for r in (0, 2):  # other rows continue unaffected unless they emit that id themselves
        expected = (
            greedy.tokens[r][: greedy.tokens[r].index(eos) + 1]
            if eos in greedy.tokens[r]
            else greedy.tokens[r]
        )
        assert out.tokens[r] == expected


def test_texts_are_the_decoded_continuations(model, tiny_tokenizer):
    tok = tiny_tokenizer
    prompts = [
        tok.encode_chat("User: weather in Paris?\nAssistant:"),
        tok.encode_chat("User: hi\nAssistant:"),
    ]
    out = generate(model, prompts, max_new_tokens=20, eos_id=-1, pad_id=tok.pad_id, tokenizer=tok)
    assert out.texts == [tok.decode(t, continuation=True) for t in out.tokens] and all(out.texts)


def _fsdp_worker(rank, world, port, queue):
    """One rank: generate alone, then under FSDP2 with an EOS that ends rank 0 after 1 step."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from tl.model import ModelArgs, Transformer

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    args = ModelArgs(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.1,
    )
    model = Transformer.from_config(args, seed=0)
    prompts = [[1, 5 + rank, 6, 7], [1, 9]]
    alone = generate(model, prompts, max_new_tokens=10, eos_id=-1, pad_id=0).tokens
    mesh = init_device_mesh("cpu", (world,))
    for block in model.layers:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # rank 0's rows all end at step 1; rank 1 runs 10 steps: the ranks must not drift apart
    eos = alone[0][0] if rank == 0 else -1
    sharded = generate(model, [prompts[0]], max_new_tokens=10, eos_id=eos, pad_id=0).tokens
    # generation gathered the weights for all its steps (tl.dist.gathered) and freed them after:
    # every parameter is a shard again, and a later forward frees its blocks' weights as before
    from torch.distributed.tensor import DTensor

    freed = all(isinstance(p, DTensor) for p in model.parameters())
    with torch.no_grad():
        model(torch.tensor([prompts[0]]))
    freed_after_forward = all(isinstance(p, DTensor) for p in model.layers.parameters())
    queue.put((rank, sharded, alone, freed and freed_after_forward))
    dist.destroy_process_group()


def test_fsdp2_ranks_run_the_same_number_of_steps():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_fsdp_worker, args=(rank, 2, port, queue)) for rank in range(2)]
    for worker in workers:
        worker.start()
    try:  # a deadlocked rank never reports: the get times out and the test fails
        results = {
            rank: (sharded, alone, freed)
            for rank, sharded, alone, freed in (queue.get(timeout=120) for _ in workers)
        }
        for worker in workers:
            worker.join(30)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
    sharded, alone, freed = results[0]
    assert sharded == [alone[0][:1]] and freed  # rank 0: stopped at its EOS
    sharded, alone, freed = results[1]
    assert sharded == [alone[0]] and freed  # rank 1: all 10 tokens, equal to unsharded generation
