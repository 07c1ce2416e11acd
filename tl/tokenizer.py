"""Tokenizers of a model directory: sentencepiece (`tokenizer.model`: LLaMA-2, CodeLLaMA) or
byte-level BPE (`tokenizer.json`: LLaMA-3, SmolLM), and a trainer for the demo's small
sentencepiece model.

Both kinds keep one contract (docs/ARCHITECTURE.md, "Tokenisation of a conversation"): a
conversation encoded segment by segment, cut before the space that opens an assistant turn
(`Assistant:| name(...)`) and at each EOS, gives the ids of the whole text encoded at once.
- sentencepiece: `encode` adds the dummy-prefix space of a document start, `encode_continuation`
  encodes text as inside a document (no dummy prefix); the cut falls at a word start, where
  sentencepiece pieces never cross.
- byte-level BPE: no dummy prefix, so `encode_continuation` is `encode`; the cut falls where the
  pre-tokenizer splits anyway (`:` ends one pre-token, ` name` opens the next; EOS is a special
  token), and BPE merges never cross pre-tokens. Text never turns into special ids: a literal
  `<|im_end|>` in a message is encoded as characters, as `</s>` is by sentencepiece.
"""

import io
import json
import os
import shutil

import sentencepiece as spm

from tl.calls import EOS_MARK, valid_unicode
from tl.errors import InputError

# Appended to a serialized ModelProto, this turns the dummy prefix off: protobuf merges a repeated
# message field into the first, and this is field 3 (normalizer_spec, 2 bytes)
# {field 3 (add_dummy_prefix) = false}.
_NO_DUMMY_PREFIX = b"\x1a\x02\x18\x00"

SENTENCEPIECE_FILE = "tokenizer.model"
BPE_FILE = "tokenizer.json"
BPE_CONFIG_FILE = "tokenizer_config.json"  # HF's: special tokens, add_bos_token


class _ChatEncoding:
    """`encode_chat`, shared by both kinds: needs bos_id, eos_id, add_bos, encode, encode_continuation."""

    def encode_chat(self, text: str) -> list[int]:
        """Ids of a rendered conversation: BOS (if the tokenizer adds one) + `text`, each literal
        `</s>` as the EOS id; the first piece encoded as a document start, later ones as
        continuations (= encoding the conversation segment by segment)."""
        first, *rest = text.split(EOS_MARK)
        ids = [self.bos_id] * self.add_bos + self.encode(first)
        for piece in rest:
            ids += [self.eos_id] + self.encode_continuation(piece)
        return ids


class SentencePieceTokenizer(_ChatEncoding):
    """A sentencepiece model file. `pad_id` is its pad piece, else unk (0) as in the paper's code;
    never EOS, so padding is not mistaken for an end of turn. BOS starts every conversation."""

    add_bos = True

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
            raise InputError(
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

    def decode(self, ids: list[int], continuation: bool = False) -> str:
        """Text of `ids`; `continuation` keeps the leading space that a document start drops
        (generated text after a prompt: ' name(...)')."""
        processor = self._sp_continuation if continuation else self.sp
        return processor.decode(list(ids))

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)

    def save(self, directory: str) -> None:
        """Copy the model file into `directory` (an HF checkpoint directory)."""
        target = os.path.join(directory, SENTENCEPIECE_FILE)
        if os.path.abspath(self.model_path) != os.path.abspath(target):
            shutil.copyfile(self.model_path, target)


def _token_text(token) -> str | None:
    """A special token as HF's tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


class BPETokenizer(_ChatEncoding):
    """A byte-level BPE `tokenizer.json` (the `tokenizers` library), with the special tokens of
    `tokenizer_config.json` and `config.json` beside it.

    - bos / eos: tokenizer_config.json's `bos_token` / `eos_token`, else config.json's ids.
    - add_bos: tokenizer_config.json's `add_bos_token`, else whether the post-processor's
      template starts with BOS (LLaMA-3 yes, SmolLM2 no).
    - pad: the pad token, else the unk token, else the first other special token -- whichever
      is first not EOS (SmolLM2's file says pad = EOS; training must never mistake padding for
      an end of turn).
    """

    def __init__(self, path):
        from tokenizers import Tokenizer as HFTokenizer

        self.model_path = os.fspath(path)
        self.directory = os.path.dirname(os.path.abspath(self.model_path))
        spec = _read_json(self.model_path, "a tokenizer.json")
        model_type = (spec.get("model") or {}).get("type")
        if model_type != "BPE":
            raise InputError(
                f"{self.model_path}: expected a byte-level BPE tokenizer (model.type 'BPE'), "
                f"found model type {model_type!r}"
            )
        if "ByteLevel" not in json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")]):
            raise InputError(
                f"{self.model_path}: expected a byte-level BPE tokenizer (a ByteLevel pre-tokenizer "
                f"and decoder, as GPT-2, LLaMA-3 and SmolLM have); found pre-tokenizer "
                f"{json.dumps(spec.get('pre_tokenizer'))[:120]}"
            )
        try:
            self.tk = HFTokenizer.from_file(self.model_path)
        except Exception as e:  # the library's own message says what it could not read
            raise InputError(f"{self.model_path}: the tokenizers library cannot read it: {e}") from None
        # Special-token strings inside text stay text (see the module docstring).
        self.tk.encode_special_tokens = True
        self.vocab_size: int = self.tk.get_vocab_size(with_added_tokens=True)
        vocab = self.tk.get_vocab(with_added_tokens=True)
        # A byte-level token spells each byte as one character, so no token covers more text characters.
        self.max_piece_chars = max(len(token) for token in vocab)

        config = _read_json(os.path.join(self.directory, BPE_CONFIG_FILE), "", missing_ok=True)
        model_config = _read_json(os.path.join(self.directory, "config.json"), "", missing_ok=True)
        special = [t.content for t in self.tk.get_added_tokens_decoder().values() if t.special]

        def token_id(name: str, config_key: str) -> int | None:
            text = _token_text(config.get(name))
            if text is not None and text in vocab:
                return vocab[text]
            from_config = model_config.get(config_key)
            return from_config[0] if isinstance(from_config, list) else from_config

        self.bos_id = token_id("bos_token", "bos_token_id")
        self.eos_id = token_id("eos_token", "eos_token_id")
        if self.eos_id is None:
            raise InputError(
                f"{self.model_path}: no EOS token: expected eos_token in {BPE_CONFIG_FILE} or "
                f"eos_token_id in config.json beside it"
            )
        candidates = [token_id("pad_token", "pad_token_id"), token_id("unk_token", "unk_token_id")]
        candidates += [vocab[t] for t in special if vocab[t] != self.bos_id]
        self.pad_id = next((i for i in candidates if i is not None and i != self.eos_id), None)
        if self.pad_id is None:
            raise InputError(f"{self.model_path}: no special token other than EOS to pad with")
        if self.bos_id is None:
            self.bos_id = self.pad_id  # only a stand-in prompt of one token ever uses it
        if "add_bos_token" in config:
            self.add_bos = bool(config["add_bos_token"])
        else:
            template = (spec.get("post_processor") or {}).get("single") or [{}]
            first = template[0].get("SpecialToken", {}).get("id")
            self.add_bos = first is not None and vocab.get(first) == self.bos_id

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of `text` (no special tokens added but those asked for)."""
        ids = self.tk.encode(valid_unicode(text), add_special_tokens=False).ids
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def encode_continuation(self, text: str) -> list[int]:
        """Ids of `text` inside a document: byte-level BPE adds no prefix space, so as `encode`."""
        return self.encode(text)

    def decode(self, ids: list[int], continuation: bool = False) -> str:
        """Text of `ids` without special tokens (`continuation` changes nothing: no prefix space)."""
        return self.tk.decode(list(ids), skip_special_tokens=True)

    def id_to_piece(self, token_id: int) -> str:
        return self.tk.id_to_token(token_id)

    def save(self, directory: str) -> None:
        """Copy tokenizer.json and tokenizer_config.json into `directory` (an HF checkpoint directory)."""
        for name in (BPE_FILE, BPE_CONFIG_FILE):
            source = os.path.join(self.directory, name)
            target = os.path.join(directory, name)
            if os.path.isfile(source) and os.path.abspath(source) != os.path.abspath(target):
                shutil.copyfile(source, target)


def _read_json(path: str, what: str, missing_ok: bool = False) -> dict:
    if missing_ok and not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found (expected {what})") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


Tokenizer = SentencePieceTokenizer | BPETokenizer


def load_tokenizer(path) -> Tokenizer:
    """The tokenizer of a model directory (its `tokenizer.model` if it has one, as LLaMA-2 and
    CodeLLaMA directories do beside a tokenizer.json; else its `tokenizer.json`), or of a file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name, kind in ((SENTENCEPIECE_FILE, SentencePieceTokenizer), (BPE_FILE, BPETokenizer)):
            if os.path.isfile(os.path.join(path, name)):
                return kind(os.path.join(path, name))
        raise FileNotFoundError(
            f"{path}: no tokenizer: expected {SENTENCEPIECE_FILE} (sentencepiece) or {BPE_FILE} "
            f"(byte-level BPE); found {sorted(os.listdir(path))[:12]}"
        )
    if path.endswith(".json"):
        return BPETokenizer(path)
    return SentencePieceTokenizer(path)


def train_tokenizer(texts, model_path, vocab_size: int = 1000, **options) -> str:
    """Train a small LLaMA-style sentencepiece tokenizer (the settings below) on `texts`, written
    to `model_path` (returned). Single-threaded in input order, so the same texts give the same
    file. `vocab_size` is an upper bound (>= 259 = 256 bytes + 3 specials)."""
    model_path = os.fspath(model_path)
    buffer = io.BytesIO()
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
    settings.update(options)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=buffer, **settings)
    os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
    with open(model_path, "wb") as f:
        f.write(buffer.getvalue())
    return model_path


def train_bpe_tokenizer(texts, directory, vocab_size: int = 512) -> str:
    """Train a small byte-level BPE tokenizer in SmolLM2's layout on `texts`: digits split one
    by one, GPT-2's pre-tokenizer, specials `<|endoftext|>` (0, unk and pad), `<|im_start|>`
    (1, BOS, not added) and `<|im_end|>` (2, EOS). Writes tokenizer.json and
    tokenizer_config.json into `directory` (returned); deterministic for the same texts."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer=trainer)
    os.makedirs(directory, exist_ok=True)
    tk.save(os.path.join(directory, BPE_FILE))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": specials[1],
        "eos_token": specials[2],
        "unk_token": specials[0],
        "pad_token": specials[0],
        "add_bos_token": False,
        "model_max_length": 8192,
    }
    with open(os.path.join(directory, BPE_CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2)
    return os.fspath(directory)
