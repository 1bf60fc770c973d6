"""The one error type for bad corpus input: its message names the file and the position."""


class CorpusError(RuntimeError):
    """Malformed, truncated, undecodable or empty corpus input."""
