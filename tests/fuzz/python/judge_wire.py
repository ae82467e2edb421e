"""Fuzz target (atheris, libFuzzer) for the judge wire's decoder: what the
python-unittest judge reads from the student's process. Any bytes must end
in a decoded message built of Python's own types, or in ProtocolError;
any other exception, a hang or memory past the limit is a finding.

Run by scripts/fuzz: python judge_wire.py CORPUS... -max_total_time=N
"""

import io
import pathlib
import sys

import atheris

HARNESS = pathlib.Path(__file__).resolve().parents[3] / "graders" / "python-unittest" / "harness"
sys.path.insert(0, str(HARNESS))

with atheris.instrument_imports():
    import wire

PLAIN = (type(None), bool, int, float, str, bytes, list, tuple, dict, set, frozenset)


class Ref:
    """Stands for an object left in the student's process."""

    def __init__(self, ident, type_name):
        self.ident, self.type_name = ident, type_name


def plain(value, depth=0):
    """The decoded value holds only Python's own types (and references)."""
    if depth > 200:
        return True
    if isinstance(value, Ref):
        return type(value.ident) is int and len(value.type_name) <= 100
    if type(value) not in PLAIN:
        return False
    if isinstance(value, dict):
        return all(plain(k, depth + 1) and plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(plain(v, depth + 1) for v in value)
    return True


def test_one(data):
    for read in (lambda: wire.decode(data, Ref), lambda: wire.read_message(io.BytesIO(data), Ref)):
        try:
            message = read()
        except wire.ProtocolError:
            continue
        if message is None:
            continue
        assert isinstance(message, list) and message and isinstance(message[0], str), message
        assert plain(message), repr(message)[:200]


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
