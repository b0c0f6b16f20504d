"""Errors Teich reports to users: one clear line, never a traceback."""


class TeichError(Exception):
    """A problem with the user's input or settings; its message names the file, line or key."""
