"""Errors the CLI turns into one clear line and an exit code (see cli.py)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """text with every character a terminal would not print as itself (line and paragraph
    breaks, vertical tabs, escapes) written as its escape: a value quoted from a damaged file
    can neither break the one line an error is nor drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class MemsweepError(Exception):
    """A failure with a message meant for the user; exit code 3 (run failed) by default."""

    exit_code = 3


class BadInput(MemsweepError):
    """The user's file or arguments are wrong: exit code 2."""

    exit_code = 2


class SetupError(MemsweepError):
    """A tool the project needs is missing or broken (e.g. `npm ci` was not run)."""

    exit_code = 3
