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


def _quoted(line: str) -> str:
    """A line for feedback: its first 80 code points, quoted, with what
    could end the quotation or drive a terminal escaped."""
    out = ['"']
    for ch in line[:_SHOWN]:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("\\u{%x}" % code)
        else:
            out.append(ch)
    if len(line) > _SHOWN:
        out.append("…")
    out.append('"')
    return "".join(out)


def _visible(visibility) -> bool:
    # The bindings' enum (Visibility.VISIBLE) or its name as every SDK
    # spells it ("visible"); anything else, None included, is not visible.
    name = getattr(visibility, "name", visibility)
    return isinstance(name, str) and name.lower().replace("_", "-") == "visible"


def first_difference(expected: str, got: str, visibility=None) -> str:
    """Where ``got`` first departs from ``expected``, for a test's feedback,
    by the one rule every SDK shares (graders/spec/comparators.md): the
    expected line is named only when ``visibility`` is
    ``Visibility.VISIBLE``; otherwise (left out included) the feedback says
    where and what the student printed, never what was expected.
    ``line 3: expected "6 3", got "6 4"``. ``Test.wrong_output`` is this
    with the test's own visibility."""
    shown = _visible(visibility)
    want, have = _trimmed(expected), _trimmed(got)
    n = min(len(want), len(have))
    for i, (w, h) in enumerate(zip(want, have)):
        if w != h:
            n = i
            break
    line = n + 1
    if n < len(want) and n < len(have):
        if shown:
            return "line %d: expected %s, got %s" % (line, _quoted(want[n]), _quoted(have[n]))
        return "line %d: got %s, which is not what was expected" % (line, _quoted(have[n]))
    if n < len(want):
        if shown:
            return "line %d: expected %s, got the end of the output" % (line, _quoted(want[n]))
        return "line %d: got the end of the output, and more was expected" % line
    if n < len(have):
        if shown:
            return "line %d: expected the end of the output, got %s" % (line, _quoted(have[n]))
        return "line %d: got %s, past the end of what was expected" % (line, _quoted(have[n]))
    return "the output differs only in spacing"
