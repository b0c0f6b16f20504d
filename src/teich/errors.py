"""Errors Teich reports to users: one clear line, never a traceback."""


class TeichError(Exception):
    """A problem with the user's input or settings; its message names the file, line or key."""


class RecordError(TeichError):
    """One record (a line of a trace file, or one row) that cannot be used; the rest of its input still loads."""
