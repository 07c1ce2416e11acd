"""MAE and PKT: hand-computed key tokens and weights, masked calls, and the exact-zero gradient."""

import pytest
import sft_tiny

from tasks.trajectories import validate_record
from tl.calls import render_prompt
from tl.classify import feedback_categories
from tl.model import ModelArgs, Transformer
from tl.sft import (
    build_samples,
    call_token_weights,
    collate,
    erroneous_calls,
    key_token_positions,
    key_token_weight,
    split_turns,
    tokenize_record,
    weighted_token_loss,
)
from tl.tokenizer import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return sft_tiny.tokenizer(tmp_path_factory.mktemp("tok"))


# ----------------------------------------------------------------------------- PKT, raw ids

# Made-up ids: 10 "▁get", 11 "_", 12 "weather", 13 "current", 14 "(", 20 "fore", 21 "cast",
# 30 "▁convert"; the call ` get_weather_current(city="X")` is [10 11 12 11 13 14 40 41 42 43].
CALL = [10, 11, 12, 11, 13, 14, 40, 41, 42, 43]
RIVALS = {
    "get_weather_forecast": [10, 11, 12, 11, 20, 21, 14],  # diverges at position 4
    "get_weather": [10, 11, 12, 14],  # the gold name extends it: diverges at 3 ("_" vs "(")
    "convert_currency": [30, 31, 14],
}  # shares no token: adds nothing


def test_key_positions_raw_ids():
    assert key_token_positions(CALL, list(RIVALS.values())) == [0, 3, 4]
    assert key_token_positions(CALL, [RIVALS["convert_currency"]]) == [0]  # only the first token
    assert key_token_positions(CALL, []) == [0]


def test_key_weight_and_clips_raw_ids():
    # |K| = 3, |NK| = 10 - 3 = 7 -> w = 7/3 on positions 0, 3, 4 and 1 elsewhere.
    assert call_token_weights(len(CALL), [0, 3, 4], w_max=9) == [7 / 3, 1, 1, 7 / 3, 7 / 3, 1, 1, 1, 1, 1]
    assert key_token_weight(1, 9, w_max=9) == 9.0
    assert key_token_weight(1, 30, w_max=9) == 9.0  # clipped at w_max
    assert key_token_weight(1, 9, w_max=4) == 4.0
    assert key_token_weight(3, 7, w_max=2) == 2.0
    # A short call where every token is key: |NK| / |K| = 0 -> clipped at 1.
    key = key_token_positions([5, 6, 7], [[5, 9], [5, 6, 8]])
    assert key == [0, 1, 2] and key_token_weight(len(key), 0, w_max=9) == 1.0
    assert key_token_weight(2, 1, w_max=9) == 1.0


# ----------------------------------------------------------------------------- PKT, real tokenizer


def _record(messages, tools=sft_tiny.TOOLS):
    return validate_record({"id": "r", "tools": tools, "messages": messages})


def _trained_spans(tok, sample):
    """Maximal runs of tokens with weight > 0, each as (ids, weights)."""
    spans, current = [], []
    for i, w in zip(sample.input_ids, sample.weights):
        if w > 0:
            current.append((i, w))
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def test_pkt_hand_computed_with_tokenizer(tok):
    pieces = [tok.id_to_piece(i) for i in tok.encode_continuation(' get_weather_current(city="Paris")')]
    # The tiny tokenizer's split, on which the expected numbers below are computed by hand.
    assert pieces == [
        "▁get",
        "_",
        "weather",
        "_",
        "curre",
        "nt",
        "(",
        "city",
        "=",
        '"',
        "P",
        "a",
        "r",
        "i",
        "s",
        '"',
        ")",
    ]
    call = {"name": "get_weather_current", "arguments": {"city": "Paris"}}
    record = _record(
        [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "tool_call": call}]
    )
    # Rivals: get_weather_forecast diverges at 4 ("curre" vs "for"); get_weather at 3 ("_" vs "(").
    # K = {0, 3, 4}, |NK| = 17 - 3 = 14, w = 14 / 3.
    [span] = _trained_spans(tok, tokenize_record(tok, record, w_max=9))
    weights = [w for _, w in span]
    assert [tok.id_to_piece(i) for i, _ in span] == pieces + ["</s>"]
    assert weights == pytest.approx([14 / 3, 1, 1, 14 / 3, 14 / 3] + [1] * 12 + [1])  # EOS: 1, not in NK
    clipped = [w for _, w in _trained_spans(tok, tokenize_record(tok, record, w_max=4))[0]]
    assert clipped == [4, 1, 1, 4, 4] + [1] * 13
    # No rival sharing a prefix (only convert_currency offered): K = {0}, w = 16 clipped to 9.
    alone = _record(record["messages"], [sft_tiny.TOOLS[0], sft_tiny.TOOLS[3]])
    assert [w for _, w in _trained_spans(tok, tokenize_record(tok, alone, w_max=9))[0]] == [9] + [1] * 17
    # --no-pkt: plain weights.
    assert [w for _, w in _trained_spans(tok, tokenize_record(tok, record, pkt=False))[0]] == [1] * 18


def test_pkt_parallel_calls_each_name(tok):
    """A parallel turn `[f(..), g(..)]`: each name's first token and divergence points are key."""
    record = _record(
        [
            {"role": "user", "content": "Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"name": "get_weather_current", "arguments": {"city": "Paris"}},
                    {"name": "convert_currency", "arguments": {"amount": 1, "to": "EUR"}},
                ],
            },
        ]
    )
    [span] = _trained_spans(tok, tokenize_record(tok, record))
    key = [tok.id_to_piece(i) for i, w in span if w > 1]
    # ' [get_weather_current(' -> ▁ [ g et _ weather _ curre nt (; ', convert_currency(' -> , ▁ c on v ...
    assert key == ["g", "_", "curre", "c"]
    assert len(span) == 48  # 47 call tokens + EOS: one w for the turn, |NK| / |K| = 43 / 4 clipped at 9
    assert {w for _, w in span if w > 1} == {9.0}


# ----------------------------------------------------------------------------- MAE

MESSAGES = [
    {"role": "user", "content": "Forecast for Rome, 2 days?"},
    {"role": "assistant", "tool_call": {"name": "get_weather_forecast", "arguments": {"city": "Rome"}}},
    {
        "role": "tool",
        "content": "TypeError: get_weather_forecast() missing 1 required positional argument: 'days'",
    },
    {
        "role": "assistant",
        "tool_call": {"name": "get_weather_forecast", "arguments": {"city": "Rome", "days": 2}},
    },
    {"role": "tool", "content": '{"days": [18, 20]}'},
    {"role": "assistant", "content": "18 C then 20 C."},
]


def test_erroneous_calls_reads_the_feedback():
    assert feedback_categories(MESSAGES) == {1: "param_missing", 3: "all_right"}
    assert erroneous_calls(MESSAGES, feedback_categories(MESSAGES)) == {1: "param_missing"}
    tail = MESSAGES[:4]  # a call with no feedback after it is not erroneous
    assert erroneous_calls(tail, feedback_categories(tail)) == {1: "param_missing"}
    assert feedback_categories(tail)[3] is None


def test_authors_mae_rule_reads_only_the_next_message():
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_call": {"name": "f", "arguments": {}}},
        {"role": "tool", "content": '{"mean": 1, "standard error": 0.1}'},  # a success to the taxonomy
        {"role": "assistant", "tool_call": {"name": "f", "arguments": {}}},
        {"role": "tool", "content": "timed out"},  # an error to the taxonomy, not in their list
        {"role": "assistant", "content": "done"},
    ]
    feedback = feedback_categories(messages)
    assert erroneous_calls(messages, feedback) == {3: "tool_instability"}
    assert erroneous_calls(messages, feedback, rule="authors") == {1: "others"}
    with pytest.raises(ValueError, match="rule"):
        erroneous_calls(messages, feedback, rule="regex")


def test_turn_unit_one_sample_per_trained_turn(tok):
    """The authors' unit: each trained turn is a prefix of the trajectory with only its own
    weights; the masked call gives no sample; the trajectory unit's weights are their union."""
    record = _record(MESSAGES)
    whole = tokenize_record(tok, record)
    turns = split_turns(whole)
    assert len(turns) == 2  # the later call and the answer; the masked call is not among them
    for t in turns:
        assert t.input_ids == whole.input_ids[: len(t.input_ids)] and t.input_ids[-1] == tok.eos_id
        trained = [i for i, w in enumerate(t.weights) if w]
        assert t.weights[min(trained) :] == whole.weights[min(trained) : len(t.input_ids)]
    assert [
        sum(x) for x in zip(*(t.weights + [0.0] * (len(whole.weights) - len(t.weights)) for t in turns))
    ] == whole.weights
    assert turns[0].n_key_tokens == whole.n_key_tokens and turns[1].n_key_tokens == 0
    samples, stats = build_samples(tok, [record], unit="turn")
    assert [s.input_ids for s in samples] == [t.input_ids for t in turns] and stats["masked"] == {
        "param_missing": 1
    }


def test_weights_line_up_with_tokens(tok):
    """Decode every trained span: exactly the later call + EOS and the answer + EOS (MAE on);
    with MAE off the erroneous call is trained too. Ids equal the inference-time encoding."""
    record = _record(MESSAGES)
    sample = tokenize_record(tok, record, pkt=False)
    assert sample.input_ids == tok.encode_chat(
        render_prompt(record["tools"], MESSAGES, add_generation_prompt=False)
    )
    decoded = [
        (tok.decode([i for i, _ in s[:-1]], continuation=True), s[-1][0]) for s in _trained_spans(tok, sample)
    ]
    assert decoded == [
        (' get_weather_forecast(city="Rome", days=2)', tok.eos_id),
        (" 18 C then 20 C.", tok.eos_id),
    ]
    assert sample.masked == {"param_missing": 1} and sample.n_calls == 2
    no_mae = tokenize_record(tok, record, mae=False, pkt=False)
    assert no_mae.input_ids == sample.input_ids
    assert [tok.decode([i for i, _ in s[:-1]], continuation=True) for s in _trained_spans(tok, no_mae)] == [
        ' get_weather_forecast(city="Rome")',
        ' get_weather_forecast(city="Rome", days=2)',
        " 18 C then 20 C.",
    ]


def test_consistency_with_inference_encoding(tok, tiny_bpe_dir):
    """Training ids (segment by segment) equal inference ids (the whole text), for both tokenizer
    kinds: sentencepiece with BOS, byte-level BPE without (SmolLM2's layout)."""
    bpe = load_tokenizer(tiny_bpe_dir)
    assert tok.add_bos and not bpe.add_bos
    for record in sft_tiny.records(24):
        record = validate_record(record)
        text = render_prompt(record["tools"], record["messages"], add_generation_prompt=False)
        for tokenizer in (tok, bpe):
            assert tokenize_record(tokenizer, record).input_ids == tokenizer.encode_chat(text), record["id"]


def test_mae_gradient_is_exactly_zero_on_the_masked_call(tok):
    record = _record(MESSAGES)
    sample = tokenize_record(tok, record)
    unmasked = tokenize_record(tok, record, mae=False)
    # The masked call: its tokens and EOS, trained without MAE, weight 0 with it.
    masked = [t for t in range(len(sample.input_ids)) if unmasked.weights[t] > 0 and sample.weights[t] == 0]
    trained = [t for t in range(len(sample.input_ids)) if sample.weights[t] > 0]
    assert (
        tok.decode([sample.input_ids[t] for t in masked[:-1]], continuation=True)
        == ' get_weather_forecast(city="Rome")'
    )
    assert sample.input_ids[masked[-1]] == tok.eos_id and min(trained) > max(
        masked
    )  # later turns are trained

    model = Transformer.from_config(
        ModelArgs(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
        seed=0,
    )
    batch = collate([sample], tok.pad_id)
    embedded = []

    def keep(module, inputs, out):
        out.retain_grad()
        embedded.append(out)

    model.model.embed_tokens.register_forward_hook(keep)
    logits = model(batch["input_ids"])
    logits.retain_grad()
    weighted_token_loss(logits, batch["targets"], batch["weights"], batch["weights"].sum()).backward()
    grad_rows = logits.grad[0].abs().sum(-1)  # row r: gradient wrt the logits that predict token r + 1
    assert all(grad_rows[t - 1] == 0 for t in masked)  # exactly zero, not just small
    assert all(grad_rows[t - 1] > 0 for t in trained)
    # The masked call stays in the context of the later turns: the loss depends on its inputs.
    assert all(embedded[0].grad[0, t].abs().sum() > 0 for t in masked)
