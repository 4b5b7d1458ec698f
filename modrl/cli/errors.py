"""Exit codes and the one-line ``modrl: error:`` report every command module uses (imports nothing of modrl)."""

from __future__ import annotations

import sys

EXIT_ERROR = 1
EXIT_USAGE = 2


def one_line(message: str) -> str:
    """``message`` on one line (whitespace runs, newlines included, become one space) for a `modrl: error:` line."""
    return " ".join(message.split())


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print ``modrl: error: <message>`` to stderr and return the exit code for a command to return."""
    print(f"modrl: error: {message}", file=sys.stderr)
    return code
