"""A sentencepiece tokenizer (LLaMA / CodeLLaMA `tokenizer.model`) and a trainer for small ones.
`encode` keeps sentencepiece's dummy-prefix space, `encode_continuation` encodes text as inside a
document, `encode_chat` joins the two (docs/ARCHITECTURE.md, "Tokenisation of a conversation").
"""

import io
import os

import sentencepiece as spm

from tl.calls import EOS_MARK, valid_unicode

# Appended to a serialized ModelProto, this turns the dummy prefix off: protobuf merges a repeated
# message field into the first, and this is field 3 (normalizer_spec, 2 bytes) {field 3 (add_dummy_prefix) = false}.
_NO_DUMMY_PREFIX = b"\x1a\x02\x18\x00"


class Tokenizer:
    """A sentencepiece model file. `pad_id` is its pad piece, else unk (0) as in the paper's code;
    never EOS, so padding is not mistaken for an end of turn."""

    def __init__(self, model_path):
        self.model_path = os.fspath(model_path)
        if not os.path.isfile(self.model_path):
            raise FileNotFoundError(f"{self.model_path}: no sentencepiece model file")
        self.sp = spm.SentencePieceProcessor(model_file=self.model_path)
        with open(self.model_path, "rb") as f:
            self._sp_continuation = spm.SentencePieceProcessor(model_proto=f.read() + _NO_DUMMY_PREFIX)
        self.vocab_size: int = self.sp.vocab_size()
        # No token covers more characters than this: a text of n characters has >= n / this tokens.
        self.max_piece_chars = max(len(self.sp.id_to_piece(i)) for i in range(self.vocab_size))
        self.bos_id: int = self.sp.bos_id()
        self.eos_id: int = self.sp.eos_id()
        self.pad_id: int = self.sp.pad_id() if self.sp.pad_id() >= 0 else self.sp.unk_id()
        if self.eos_id < 0 or self.pad_id == self.eos_id:
            raise ValueError(
                f"{self.model_path}: needs an EOS piece distinct from pad/unk "
                f"(eos={self.eos_id}, pad={self.pad_id})"
            )

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of `text` as the start of a document (with the dummy-prefix space)."""
        return [self.bos_id] * bos + self.sp.encode(valid_unicode(text)) + [self.eos_id] * eos

    def encode_continuation(self, text: str) -> list[int]:
        """Ids of `text` inside a document (no dummy prefix): for `b` starting with a space (and `a`
        not ending with one), `encode(a) + encode_continuation(b) == encode(a + b)`."""
        return self._sp_continuation.encode(valid_unicode(text))

    def encode_chat(self, text: str) -> list[int]:
        """BOS + `text` with each literal `</s>` as the EOS id, the first piece encoded as a document
        start and later ones as continuations (= encoding a conversation segment by segment)."""
        first, *rest = text.split(EOS_MARK)
        ids = [self.bos_id] + self.encode(first)
        for piece in rest:
            ids += [self.eos_id] + self.encode_continuation(piece)
        return ids

    def decode(self, ids: list[int], continuation: bool = False) -> str:
        """Text of `ids`; `continuation` keeps the leading space that a document start drops
        (generated text after a prompt: ' name(...)')."""
        return (self._sp_continuation if continuation else self.sp).decode(list(ids))

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)


def train_tokenizer(texts, model_path, vocab_size: int = 1000, **options) -> str:
    """Train a small LLaMA-style tokenizer (the settings below) on `texts`, written to `model_path`
    (returned). Single-threaded in input order, so the same texts give the same file. `vocab_size`
    is an upper bound (>= 259 = 256 bytes + 3 specials)."""
    model_path, buffer = os.fspath(model_path), io.BytesIO()
    settings = dict(
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=1 << 20,
        minloglevel=2,
    )
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buffer, **{**settings, **options}
    )
    os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
    with open(model_path, "wb") as f:
        f.write(buffer.getvalue())
    return model_path
