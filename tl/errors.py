"""The one error type for bad input files (a checkpoint, a tokenizer, a GGUF file, training or
benchmark data): the scripts print its message, which names the file and says what was
expected and what was found, as one line instead of a traceback."""


class InputError(ValueError):
    """A file the user gave is not what was expected."""
