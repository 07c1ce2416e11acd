"""The sentencepiece wrapper: LLaMA-style specials, continuation encoding, chat encoding."""

import random

import pytest
from conftest import sample_texts

from tl.tokenizer import EOS_MARK, Tokenizer, train_tokenizer


def test_trained_tokenizer_is_llama_style(tiny_tokenizer):
    tok = tiny_tokenizer
    assert (tok.sp.unk_id(), tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.pad_id == 0 != tok.eos_id  # no pad piece: pad falls back to unk, as in the paper's code
    assert tok.id_to_piece(3) == "<0x00>" and tok.id_to_piece(258) == "<0xFF>"  # byte fallback
    assert 259 < tok.vocab_size <= 500
    # digits are split, and text the training data never saw still round-trips via bytes
    assert [tok.id_to_piece(i) for i in tok.encode_continuation("2024")] == ["2", "0", "2", "4"]
    for text in ["héllo wörld ✓ 🙂", "  two spaces\tand tab\n", 'get_weather(city="東京")']:
        assert tok.decode(tok.encode(text)) == text


def test_training_is_deterministic(tiny_tokenizer_path, tmp_path):
    again = train_tokenizer(sample_texts(), tmp_path / "again.model", vocab_size=500)
    with open(again, "rb") as a, open(tiny_tokenizer_path, "rb") as b:
        assert a.read() == b.read()


def test_encode_bos_eos_and_dummy_prefix(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = tok.encode("Paris", bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.id_to_piece(ids[1]).startswith("▁")  # sentencepiece's dummy-prefix space
    assert not tok.id_to_piece(tok.encode_continuation("Paris")[0]).startswith("▁")
    assert tok.decode(tok.encode_continuation(" get_weather(")) == "get_weather("
    assert tok.decode(tok.encode_continuation(" get_weather("), continuation=True) == " get_weather("


def random_splits(texts, rng, per_text=4):
    """(a, b) with b starting at a space that does not follow whitespace: a word boundary."""
    for text in texts:
        cuts = [i for i in range(1, len(text)) if text[i] == " " and not text[i - 1].isspace()]
        for cut in rng.sample(cuts, min(per_text, len(cuts))):
            yield text[:cut], text[cut:]


def random_text(rng):
    alphabet = "abcdefgh_XYZ0123456789(){}\":,.=\n'éü東🙂"
    words = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(rng.randint(2, 12))
    ]
    return " ".join(words)


def test_encode_continuation_is_the_middle_of_a_document(tiny_tokenizer):
    """encode(a + b) == encode(a) + encode_continuation(b) for b at a word boundary."""
    tok = tiny_tokenizer
    rng = random.Random(0)
    texts = sample_texts(60, seed=1) + [random_text(rng) for _ in range(150)]
    splits = list(random_splits(texts, rng))
    assert len(splits) > 500
    for a, b in splits:
        assert tok.encode(a + b) == tok.encode(a) + tok.encode_continuation(b), (a, b)
    # the classic sentinel trick (encode sentinel + b, strip the sentinel's ids) agrees
    sentinel = tok.encode("Output:")
    for _, b in splits[:200]:
        assert tok.encode("Output:" + b)[len(sentinel) :] == tok.encode_continuation(b), b


def test_encode_chat_hand_example(tiny_tokenizer):
    tok = tiny_tokenizer
    text = f"User: hi\nAssistant: f(x=1){EOS_MARK}\nUser: ok\nAssistant: done{EOS_MARK}"
    expected = (
        [tok.bos_id]
        + tok.encode("User: hi\nAssistant: f(x=1)")
        + [tok.eos_id]
        + tok.encode_continuation("\nUser: ok\nAssistant: done")
        + [tok.eos_id]
    )
    assert tok.encode_chat(text) == expected
    assert tok.encode_chat("User: hi") == [tok.bos_id] + tok.encode("User: hi")
    assert tok.encode_chat(EOS_MARK) == [tok.bos_id, tok.eos_id]
    # the literal marker never survives as text pieces
    assert "</s>" not in tok.decode(tok.encode_chat(text))


def test_encode_chat_equals_segment_by_segment(tiny_tokenizer):
    """Training encodes rendered segments one by one (cut before a space or at an EOS mark);
    inference encodes the whole prompt text. Both must give the same ids."""
    tok = tiny_tokenizer
    segments = [
        "System: tools\nUser: weather in Zürich?\nAssistant:",
        ' get_weather(city="Zürich")',
        EOS_MARK,
        '\nOutput: {"temp_c": 3.5}\nAssistant:',
        " It is 3.5 °C.",
        EOS_MARK,
        "\nUser: and Paris?\nAssistant:",
    ]
    ids = [tok.bos_id]
    for n, segment in enumerate(segments):
        if segment == EOS_MARK:
            ids.append(tok.eos_id)
        else:
            ids += tok.encode(segment) if n == 0 else tok.encode_continuation(segment)
    assert tok.encode_chat("".join(segments)) == ids


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sentencepiece model file"):
        Tokenizer(tmp_path / "nope.model")
