"""Library exceptions. The CLI turns each into one line on stderr and a non-zero exit.

Messages are written for the user: they say what went wrong and what to do about it.
"""


class RagkitError(Exception):
    """Base class: anything ragkit reports to the user as a one-line message."""

    exit_code = 1


class UsageError(RagkitError):
    """Bad input from the user: a flag, a file or a value that cannot be used."""

    exit_code = 2


class SettingsError(UsageError, ValueError):
    """A setting has the wrong type or value; the message is one sentence naming the field path,
    e.g. `eval.k: expected an integer, got 'five'` (ragkit.settings). Also a ValueError, so the
    Python API can catch it the way it catches any bad argument. `path` is the field's path, so
    the CLI can name the option instead (`--per-chunk: must be at least 1, got 0`)."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


class LoadError(RagkitError):
    """A file could not be turned into text (ragkit.ingest.loaders); the message is the reason
    shown to the user. Ingest records it as a skipped file and goes on."""


class OnnxUnsupported(RagkitError):
    """This model cannot run on the ONNX backend (the torch backend still can)."""


class ExportError(RagkitError):
    """An adapter could not be merged or written as GGUF (ragkit.sft.export)."""


class OutOfMemory(RagkitError):
    """Training would not fit (or did not fit) in this machine's memory."""


class IndexMissing(RagkitError):
    pass


class IndexIncompatible(RagkitError):
    """The index was built with other settings (embedding model, format version)."""


class IndexLocked(RagkitError):
    pass


class IndexDamaged(RagkitError):
    """A file of the index is missing, truncated or not what ragkit wrote; the message names it."""


class ModelNotFound(RagkitError):
    pass


class BackendError(RagkitError):
    """A generator backend failed: server down, garbage reply, model refused to load."""


class ContextOverflow(RagkitError):
    pass


class BenchFormatError(RagkitError):
    pass


class DataFormatError(RagkitError):
    pass


class CalcRefused(RagkitError, ValueError):
    """The calculator (ragkit.reason.calc) will not evaluate an expression; the message is the
    reason (a name, a huge power, a malformed date). The answer path falls back to a direct answer."""
