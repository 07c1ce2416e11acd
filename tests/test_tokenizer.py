"""Both tokenizer kinds: sentencepiece (LLaMA-style specials, continuation encoding) and byte-level
BPE (SmolLM2-style specials, pad never EOS), the chat encoding contract for each, and the errors
a bad tokenizer directory gets."""

import json
import random
import shutil

import pytest
from conftest import sample_texts

from tl.errors import InputError
from tl.tokenizer import EOS_MARK, BPETokenizer, SentencePieceTokenizer, load_tokenizer, train_tokenizer


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


@pytest.mark.parametrize("kind", ["sentencepiece", "bpe"])
def test_encode_continuation_is_the_middle_of_a_document(kind, tiny_tokenizer, tiny_bpe_dir):
    """The segment contract, for both kinds: encode(a + b) == encode(a) + encode_continuation(b)
    for b at a word boundary (a space that follows a non-space)."""
    tok = tiny_tokenizer if kind == "sentencepiece" else load_tokenizer(tiny_bpe_dir)
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
        load_tokenizer(tmp_path / "nope.model")


# ----------------------------------------------------------------------------- byte-level BPE
def test_bpe_directory_is_smollm_style(tiny_bpe_dir):
    tok = load_tokenizer(tiny_bpe_dir)
    assert isinstance(tok, BPETokenizer)
    # bos <|im_start|> is not added; pad is <|endoftext|>, never EOS
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.add_bos) == (1, 2, 0, False)
    assert [tok.id_to_piece(i) for i in tok.encode("2024")] == ["2", "0", "2", "4"]  # digits one by one
    for text in ["héllo wörld ✓ 🙂", "  two spaces\tand tab\n", 'get_weather(city="東京")', " lead"]:
        assert tok.decode(tok.encode(text)) == text  # bytes the training never saw still round-trip
    assert tok.encode_continuation(" get_weather(") == tok.encode(" get_weather(")  # no prefix space
    assert tok.decode(tok.encode(" get_weather("), continuation=True) == " get_weather("


def test_bpe_special_token_strings_in_text_stay_text(tiny_bpe_dir):
    """A message that contains `<|im_end|>` must not end the turn: it is encoded as characters,
    as sentencepiece encodes a literal `</s>`."""
    tok = load_tokenizer(tiny_bpe_dir)
    ids = tok.encode("a <|im_end|> b <|im_start|>")
    assert tok.eos_id not in ids and tok.bos_id not in ids
    assert tok.decode(ids) == "a <|im_end|> b <|im_start|>"
    assert tok.encode_chat(f"x{EOS_MARK}y") == tok.encode("x") + [tok.eos_id] + tok.encode("y")


def _edit_config(directory, tmp_path, **changes) -> str:
    copy = tmp_path / "tok"
    shutil.copytree(directory, copy)
    config_file = copy / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    config_file.write_text(json.dumps(config))
    return str(copy)


def test_bpe_specials_come_from_the_files_and_pad_is_never_eos(tiny_bpe_dir, tmp_path):
    # SmolLM2's own file says pad = EOS: padding would then read as an end of turn
    tok = load_tokenizer(_edit_config(tiny_bpe_dir, tmp_path / "a", pad_token="<|im_end|>"))
    assert tok.pad_id == 0 != tok.eos_id
    tok = load_tokenizer(_edit_config(tiny_bpe_dir, tmp_path / "b", pad_token=None, unk_token=None))
    assert tok.pad_id not in (tok.eos_id, None)
    tok = load_tokenizer(_edit_config(tiny_bpe_dir, tmp_path / "c", add_bos_token=True))
    assert tok.encode_chat("User: hi") == [tok.bos_id] + tok.encode("User: hi")
    # no tokenizer_config.json: the ids come from config.json beside it
    bare = tmp_path / "d"
    shutil.copytree(tiny_bpe_dir, bare)
    (bare / "tokenizer_config.json").unlink()
    (bare / "config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": [2, 0]}))
    tok = load_tokenizer(bare)
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.add_bos) == (1, 2, 0, False)


def test_bpe_chat_ids_equal_transformers(tiny_bpe_dir):
    """transformers' fast tokenizer, reading the same directory, encodes the whole conversation
    (EOS written as its token) to the ids encode_chat builds segment by segment."""
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(tiny_bpe_dir)
    tok = load_tokenizer(tiny_bpe_dir)
    for text in sample_texts(100, seed=2):
        assert theirs(text.replace(EOS_MARK, "<|im_end|>")).input_ids == tok.encode_chat(text), text


def test_load_tokenizer_picks_by_what_the_directory_holds(tiny_tokenizer_path, tiny_bpe_dir, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(tiny_bpe_dir, both)
    shutil.copyfile(tiny_tokenizer_path, both / "tokenizer.model")
    # LLaMA-2 / CodeLLaMA directories hold both; their tokenizer.model is the reference
    assert isinstance(load_tokenizer(both), SentencePieceTokenizer)
    assert isinstance(load_tokenizer(tiny_bpe_dir), BPETokenizer)
    assert isinstance(load_tokenizer(both / "tokenizer.json"), BPETokenizer)
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"empty: no tokenizer: expected tokenizer.model .* or tokenizer.json"
    ):
        load_tokenizer(tmp_path / "empty")


def test_a_tokenizer_json_that_is_not_byte_level_bpe_is_refused(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers

    unigram = HFTokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], unk_id=0))
    unigram.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(
        InputError, match=r"tokenizer.json: expected a byte-level BPE .* found model type 'Unigram'"
    ):
        load_tokenizer(tmp_path)
    metaspace = HFTokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[]))
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace()
    metaspace.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(InputError, match=r"expected a byte-level BPE tokenizer \(a ByteLevel pre-tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputError, match=r"tokenizer.json: not valid JSON"):
        load_tokenizer(tmp_path)
