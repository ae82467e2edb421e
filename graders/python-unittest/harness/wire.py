"""The wire between the judge and the student's process.

One JSON array per line. Values are plain data: None, bool, int, float, str
and lists as JSON has them; tuples, dicts, sets, frozensets, bytes and
non-finite floats as tagged objects ``{"$": TAG, "v": ...}``; anything else
as a reference ``{"$": "ref", "id": N, "type": NAME}`` to an object that
stays in the student's process. A decoded value is built from Python's own
types only, so nothing the student's process sends can carry code or
behaviour (an ``__eq__`` that always agrees) into the judge.
"""

import json
import math
import os
import select
import time

# Longest line either side reads; a longer one ends the conversation.
MAX_LINE = 8 * 1024 * 1024


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


class Unencodable(Exception):
    """A value that cannot cross as plain data."""


def encode(value, as_ref=None):
    """Turns ``value`` into JSON-ready data.

    ``as_ref(obj)`` returns the tagged reference for an object that cannot
    cross as data; without it such an object raises ``Unencodable``.
    """
    if value is None or isinstance(value, (bool, str)):
        return str.__str__(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else {"$": "float", "v": repr(number)}
    try:
        if isinstance(value, list):
            return [encode(v, as_ref) for v in list.__iter__(value)]
        if isinstance(value, tuple):
            return {"$": "tuple", "v": [encode(v, as_ref) for v in tuple.__iter__(value)]}
        if isinstance(value, dict):
            pairs = dict.items(value)
            return {"$": "dict", "v": [[encode(k, as_ref), encode(v, as_ref)] for k, v in pairs]}
        if isinstance(value, (set, frozenset)):
            tag = "frozenset" if isinstance(value, frozenset) else "set"
            return {"$": tag, "v": [encode(v, as_ref) for v in value]}
        if isinstance(value, (bytes, bytearray)):
            return {"$": "bytes", "v": bytes(value).hex()}
    except Unencodable:
        if as_ref is None:
            raise
        return as_ref(value)
    if as_ref is None:
        raise Unencodable(type(value).__name__)
    return as_ref(value)


def _untag(obj, make_ref):
    tag = obj.get("$")
    items = obj.get("v")
    if tag == "tuple" and isinstance(items, list):
        return tuple(items)
    if tag == "dict" and isinstance(items, list):
        return {k: v for k, v in items}
    if tag == "set" and isinstance(items, list):
        return set(items)
    if tag == "frozenset" and isinstance(items, list):
        return frozenset(items)
    if tag == "bytes" and isinstance(items, str):
        return bytes.fromhex(items)
    if tag == "float" and items in ("nan", "inf", "-inf"):
        return float(items)
    if tag == "ref" and type(obj.get("id")) is int and make_ref is not None:
        return make_ref(obj["id"], str(obj.get("type", "object"))[:100])
    raise ProtocolError("unknown value tag %r" % (tag,))


def decode(line, make_ref=None):
    """Parses one message line into a list, refusing anything malformed."""
    if len(line) > MAX_LINE:
        raise ProtocolError("a message of %d bytes is longer than %d" % (len(line), MAX_LINE))
    try:
        message = json.loads(line, object_hook=lambda obj: _untag(obj, make_ref))
    except ProtocolError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError, AttributeError) as err:
        raise ProtocolError("not a valid message: %s" % type(err).__name__) from None
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise ProtocolError("a message must be a list starting with its kind")
    return message


def dump(message):
    """One message as a line of bytes."""
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode() + b"\n"


class Lines:
    """Message lines from a file descriptor, each read before a deadline.

    Unlike a buffered file, it never blocks past the deadline, and a fork
    copies what it holds, so a child reads on where its parent stopped.
    """

    def __init__(self, fd):
        self.fd = fd
        self.held = bytearray()
        self.at_end = False

    def readline(self, limit, deadline=None):
        """One line of at most ``limit`` bytes (shorter at end of file, ``b""``
        after it); ``TimeoutError`` when ``deadline`` (of ``time.monotonic``)
        passes first."""
        while True:
            end = self.held.find(b"\n", 0, limit)
            if end >= 0 or len(self.held) >= limit or (self.at_end and self.held):
                cut = end + 1 if end >= 0 else min(limit, len(self.held))
                line = bytes(self.held[:cut])
                del self.held[:cut]
                return line
            if self.at_end:
                return b""
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    raise TimeoutError
            chunk = os.read(self.fd, 1 << 16)
            if chunk:
                self.held += chunk
            else:
                self.at_end = True


def send(fd, data, deadline=None):
    """Writes all of ``data`` to ``fd``; with a deadline, ``fd`` must be
    non-blocking, and ``TimeoutError`` says the deadline passed first."""
    view = memoryview(data)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise TimeoutError
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            pass


def read_message(stream, make_ref=None, deadline=None):
    """Reads one line; ``None`` at end of file. A deadline needs ``Lines``."""
    if deadline is None:
        line = stream.readline(MAX_LINE + 1)
    else:
        line = stream.readline(MAX_LINE + 1, deadline)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("a message longer than %d bytes, or cut short" % MAX_LINE)
    return decode(line, make_ref)
