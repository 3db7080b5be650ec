"""Text for a person's terminal: control characters escaped, so that attacker-chosen text (a user name tried in a
failed login, a file name, a reference typed into a form) can never move the cursor, rewrite the screen, change
the title, hide itself (bidi overrides, zero-width characters) or forge a line.

:func:`escape` is for one value shown inside a line (table cells); :class:`EscapingStream` wraps the CLI's
stdout and stderr so that every line it prints gets the same treatment, line breaks and tabs of its own kept;
:class:`EscapingFormatter` does it for log records.
"""
from __future__ import annotations

import logging
import unicodedata
from typing import TextIO

_CONTROL_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}  # controls, format characters (bidi, zero-width), line/para sep


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str, keep: str = "") -> str:
    """``text`` with every control or format character written as a visible escape (``\\x1b``, ``\\u202e``),
    except those in ``keep``."""
    if text.isprintable():
        return text
    return "".join(_escaped(ch) if ch not in keep and unicodedata.category(ch) in _CONTROL_CATEGORIES else ch
                   for ch in text)


class EscapingStream:
    """A text stream that escapes control characters in everything written to it, keeping newlines and tabs."""

    def __init__(self, inner: TextIO):
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(escape(text, keep="\n\t"))
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding...
        return getattr(self._inner, name)


class EscapingFormatter(logging.Formatter):
    """Log lines with control characters escaped (a traceback's own line breaks kept)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record), keep="\n\t")
