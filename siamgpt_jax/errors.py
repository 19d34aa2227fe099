"""The one base class of errors a user can fix (a missing file, a bad config value, a damaged
checkpoint, a malformed prompt line). The CLI prints such an error as one line naming the file, key
or tensor, and exits 2 with no traceback; anything else is a bug and keeps its traceback."""


class UserError(ValueError):
    """Something the user gave (a path, a value, a file's content) is wrong; the message says what and where."""
