"""The one error boundary's vocabulary: what is the user's to fix, and how it is shown.

Every error the platform raises about its input or environment (a params key, a source file, a
corpus line, a BLURB file, a prediction file, a tracking URI, a Ray address, a lock held by another
run) derives from `UserError`. The CLI prints those as one line naming the file, line, key or URI and
exits with status 2; so are the operating system's faults that are the environment's, not the
code's (`environment_fault`: permission denied, disk full, read-only file system). Anything else
is a bug and keeps its traceback; `pubmedlm --debug ...` (or `PUBMEDLM_DEBUG=1`) shows the
traceback of user errors too.
"""

from __future__ import annotations

import errno

USER_EXIT = 2
"""Exit status of a run stopped by a user error (input or environment)."""


class UserError(Exception):
    """Bad input or a fault of the environment; the message names what to fix."""


# errno -> what the user should do about it
_ENVIRONMENT = {
    errno.EACCES: "permission denied{where}: make it readable/writable by this user",
    errno.EPERM: "operation not permitted{where}: check the file's owner and permissions",
    errno.ENOSPC: "no space left on the device{where}: free space or point the output elsewhere",
    errno.EDQUOT: "disk quota exceeded{where}: free space or point the output elsewhere",
    errno.EROFS: "read-only file system{where}: outputs need a writable project folder",
}


def environment_fault(error: BaseException) -> str | None:
    """One line for an OS error that is the environment's fault (permissions, space), else None."""
    if not isinstance(error, OSError) or error.errno not in _ENVIRONMENT:
        return None
    where = f": {error.filename}" if error.filename else ""
    return _ENVIRONMENT[error.errno].format(where=where)


__all__ = ["USER_EXIT", "UserError", "environment_fault"]
