"""Comparing a program's output with what was expected."""

import math


def exact(expected: str, got: str) -> bool:
    """Byte-for-byte equal."""
    return expected == got


def ignoring_whitespace(expected: str, got: str) -> bool:
    """Equal after splitting both on any whitespace."""
    return expected.split() == got.split()


def _number(token: str):
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numeric(expected: str, got: str, tolerance: float = 1e-6) -> bool:
    """Token by token: numbers within ``tolerance`` (absolute or relative),
    other tokens equal."""
    want, have = expected.split(), got.split()
    if len(want) != len(have):
        return False
    for w, h in zip(want, have):
        a, b = _number(w), _number(h)
        if a is not None and b is not None:
            if abs(a - b) > tolerance and abs(a - b) > tolerance * abs(a):
                return False
        elif w != h:
            return False
    return True
