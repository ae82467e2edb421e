"""Comparing a program's output with what was expected, by the rules of
graders/spec/comparators.md that every agh SDK shares. Each runs in time
linear in its input."""

import math
import re

# Space, tab, line feed, form feed and carriage return, and nothing else.
SPACE = " \t\n\f\r"
_SPACES = re.compile("[ \t\n\f\r]+")
# Unambiguous, so it never backtracks: digits, then an optional point and
# digits, or a point and digits; then an optional exponent.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def tokens(text: str):
    """The runs of characters that are not whitespace."""
    return [t for t in _SPACES.split(text) if t]


def exact(expected: str, got: str) -> bool:
    """Byte-for-byte equal."""
    return expected == got


def ignoring_whitespace(expected: str, got: str) -> bool:
    """Equal token by token."""
    return tokens(expected) == tokens(got)


def number(token: str):
    """The value of ``token`` when it is a number by the specification
    (decimal, optional sign, point and exponent, finite), else None."""
    if not _NUMBER.fullmatch(token):
        return None
    value = float(token)
    return value if math.isfinite(value) else None


def numeric(expected: str, got: str, tolerance: float = 1e-6) -> bool:
    """Token by token: numbers within ``tolerance`` (absolute or relative),
    other tokens equal."""
    want, have = tokens(expected), tokens(got)
    if len(want) != len(have):
        return False
    for w, h in zip(want, have):
        a, b = number(w), number(h)
        if a is not None and b is not None:
            if abs(a - b) > tolerance and abs(a - b) > tolerance * abs(a):
                return False
        elif w != h:
            return False
    return True
