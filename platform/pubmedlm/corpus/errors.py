"""The one error type for bad corpus input: its message names the file and the position."""

from pubmedlm.errors import UserError


class CorpusError(UserError, RuntimeError):
    """Malformed, truncated, undecodable or empty corpus input."""
