"""Errors Teich reports to users: one clear line, never a traceback. Every one is a :class:`TeichError`,
so ``except TeichError`` catches all that Teich raises on purpose."""


class TeichError(Exception):
    """A problem with the user's input or settings; its message names the file, line or key."""


class RecordError(TeichError):
    """One record (a line of a trace file, or one row) that cannot be used; the rest of its input still loads."""


class TemplateError(TeichError):
    """A chat template that cannot render a row, or a rendering in which a row cannot be supervised."""


class ConfigError(TeichError):
    """A generation setting that cannot work; the message names the key."""


class GenerationError(TeichError):
    """A prompt that could not be completed; the message says why, ``output`` holds what the agent printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class OutputError(TeichError):
    """An output that cannot be written; the message says what was kept, and where."""


class SandboxError(TeichError):
    """A sandbox that cannot be set up for an agent run."""
