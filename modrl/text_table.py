"""Plain-text tables for the command line."""

from __future__ import annotations


def format_row(row: list[str], widths: list[int]) -> str:
    """First cell left-aligned, the rest right-aligned (a row may be shorter than the header)."""
    cells = [
        cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths, strict=False))
    ]
    return "  ".join(cells)
