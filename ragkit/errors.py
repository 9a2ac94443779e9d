"""Library exceptions. The CLI turns each into one line on stderr and a non-zero exit.

Messages are written for the user: they say what went wrong and what to do about it.
"""


class RagkitError(Exception):
    """Base class: anything ragkit reports to the user as a one-line message."""

    exit_code = 1


class UsageError(RagkitError):
    """Bad input from the user: a flag, a file or a value that cannot be used."""

    exit_code = 2


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
