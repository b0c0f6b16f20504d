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


class PublishError(TeichError):
    """A folder not published: secrets remain in it (named by file and line, never quoted), or the Hub
    refused or could not be reached."""


def first_line(error: BaseException, *, typed: bool = False) -> str:
    """The first line of an error's message (``"ValueError: ..."`` with ``typed``), or the name of its
    type when the message is blank: how Teich quotes an error it did not raise itself."""
    lines = str(error).strip().splitlines()
    name = type(error).__name__
    if not lines:
        return name
    return f"{name}: {lines[0]}" if typed else lines[0]


def last_line(output: str | bytes) -> str:
    """The last non-blank line of a failed command's output (at most 300 characters), or ``""``."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
