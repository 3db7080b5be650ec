"""Belgian enterprise numbers (ondernemingsnummer / numéro d'entreprise): the ids of the centres.

Ten digits, the first 0 or 1; the last two are 97 minus (the first eight modulo 97).
"""
from __future__ import annotations

import re

_PRINTED = re.compile(r"^(?:BE)?\s*([01])(\d{3})[.\s]?(\d{3})[.\s]?(\d{3})$", re.IGNORECASE)


def is_valid(number: str) -> bool:
    """Strict form used in paths: exactly ten digits with a correct check."""
    if len(number) != 10 or not number.isascii() or not number.isdigit() or number[0] not in "01":
        return False
    return 97 - int(number[:8]) % 97 == int(number[8:])


def normalize(text: str) -> str:
    """Accept the printed forms (``0212.345.678``, ``BE 0212 345 678``) and return the ten digits.

    Raises ValueError with a clear message when the number is malformed or its check digits are wrong.
    """
    m = _PRINTED.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a Belgian enterprise number (10 digits, e.g. 0212.345.679)")
    number = "".join(m.groups())
    if not is_valid(number):
        raise ValueError(f"{text!r}: the check digits of this enterprise number are wrong")
    return number


def with_check(first8: int | str) -> str:
    """Build a valid number from its first eight digits (demo data, tests)."""
    body = f"{int(first8):08d}"
    return body + f"{97 - int(body) % 97:02d}"
