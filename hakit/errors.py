"""Errors and the exit codes of the CLI contract (DESIGN.md "The CLI contract").

Every error a user can cause is a :class:`HakitError`; the CLI prints its message and exits
with its code, never with a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


def printable(text: str) -> str:
    """``text`` with every character that is not printable, but line breaks and tabs, escaped
    (``\\x1b``): a message that quotes a hostile value never drives the terminal that shows it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


class ExitCode(IntEnum):
    """Exit codes every hakit command uses."""

    OK = 0  #: done
    FAILED = 1  #: failed; state left consistent, a re-run resumes
    BAD_INPUT = 2  #: bad usage or bad input; nothing was changed
    REFUSED = 3  #: refused for safety; the message says why and what would allow it


class HakitError(Exception):
    """Base of every error hakit reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where it is and which rule it breaks."""

    file: str
    field: str  #: dotted path of the field in the file ("" for the whole file)
    message: str  #: the rule, in plain words
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InputError(HakitError):
    """Bad input (inventory, secrets file, flags). Nothing was written."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, (Problem, str)):
            problems = [problems]  # type: ignore[list-item]
        self.problems: list[Problem | str] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ToolMissing(InputError):
    """A program hakit needs is not installed; the message names the Debian package."""

    def __init__(self, program: str, package: str, purpose: str):
        self.program, self.package = program, package
        super().__init__(f"{program} is needed to {purpose} but is not installed "
                         f"(Debian package: {package}; apt-get install {package})")


class SafetyRefusal(HakitError):
    """An operation hakit refuses because it could break a safety invariant."""

    exit_code = ExitCode.REFUSED


class OperationFailed(HakitError):
    """An operation failed part-way; the state is consistent and a re-run resumes."""

    exit_code = ExitCode.FAILED
