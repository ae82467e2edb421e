"""Line-based comparisons and feedback, for outputs judged line by line."""

_SHOWN = 80
# The comparisons' whitespace (graders/spec/comparators.md).
_SPACE = " \t\n\f\r"


def _trimmed(text: str):
    lines = [line.rstrip(_SPACE) for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def same(expected: str, got: str) -> bool:
    """Equal line by line, ignoring trailing whitespace and blank last lines."""
    return _trimmed(expected) == _trimmed(got)


def same_unordered(expected: str, got: str) -> bool:
    """The same lines in any order (each as many times)."""
    return sorted(_trimmed(expected)) == sorted(_trimmed(got))


def _clip(line: str) -> str:
    return line if len(line) <= _SHOWN else line[:_SHOWN] + "…"


def first_difference(expected: str, got: str) -> str:
    """A short description of the first line where ``got`` differs from
    ``expected``, for feedback: ``line 3: expected "6 3", got "6 4"``."""
    want, have = _trimmed(expected), _trimmed(got)
    for i, (w, h) in enumerate(zip(want, have)):
        if w != h:
            return 'line %d: expected "%s", got "%s"' % (i + 1, _clip(w), _clip(h))
    if len(want) > len(have):
        return 'line %d: expected "%s", got the end of the output' % (len(have) + 1, _clip(want[len(have)]))
    if len(want) < len(have):
        return 'line %d: expected the end of the output, got "%s"' % (len(want) + 1, _clip(have[len(want)]))
    return "the output differs only in spacing"
