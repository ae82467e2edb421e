"""The student's side of a conversation with the judge.

Runs as the student user in /work. It imports the student's modules when the
judge asks and answers the judge's requests (get an attribute, call, index,
iterate, ...) one line at a time, over its stdin and the stdout it had when
it started. The student's own prints go to stderr, so they never mix with
the answers. Whatever happens in this process, the judge only ever receives
plain data (see wire.py) and decides every verdict itself.

``student.py --check`` compiles every .py file in /work without running any
of them, and lists the syntax errors.
"""

import importlib
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

# Where the submission is.
WORK = os.environ.get("AGH_WORK", "/work")
# Most .py files the syntax check looks at.
MAX_CHECKED_FILES = 10000
# Most items one iteration sends back.
MAX_ITEMS = 100000


def check(root=WORK):
    """Compiles every .py file below root; returns a shell status."""
    problems = 0
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            seen += 1
            if seen > MAX_CHECKED_FILES:
                sys.stderr.write("more than %d .py files; the rest are not checked\n" % MAX_CHECKED_FILES)
                return 1 if problems else 0
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as source:
                    compile(source.read(), os.path.relpath(path, root), "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as err:
                problems += 1
                sys.stderr.write("".join(traceback.format_exception_only(type(err), err)))
            except OSError as err:
                problems += 1
                sys.stderr.write("%s: cannot be read: %s\n" % (os.path.relpath(path, root), err.strerror))
    return 1 if problems else 0


class Objects:
    """The objects the judge holds references to."""

    def __init__(self):
        self.by_id = {}

    def ref(self, value):
        ident = len(self.by_id) + 1
        self.by_id[ident] = value
        return {"$": "ref", "id": ident, "type": type(value).__name__}

    def get(self, ident, _type=None):
        if ident not in self.by_id:
            raise wire.ProtocolError("no object %r" % (ident,))
        return self.by_id[ident]


def perform(objects, request):
    kind = request[0]
    args = request[1:]
    if kind == "import":
        return importlib.import_module(str(args[0]))
    target = objects.get(args[0])
    if kind == "getattr":
        return getattr(target, str(args[1]))
    if kind == "setattr":
        setattr(target, str(args[1]), args[2])
        return None
    if kind == "call":
        return target(*args[1], **args[2])
    if kind == "getitem":
        return target[args[1]]
    if kind == "setitem":
        target[args[1]] = args[2]
        return None
    if kind == "len":
        return len(target)
    if kind == "contains":
        return args[1] in target
    if kind == "bool":
        return bool(target)
    if kind == "list":
        items = []
        for item in target:
            items.append(item)
            if len(items) > MAX_ITEMS:
                raise ValueError("more than %d items" % MAX_ITEMS)
        return items
    if kind == "repr":
        return repr(target)
    if kind == "str":
        return str(target)
    raise wire.ProtocolError("unknown request %r" % (kind,))


def serve():
    answers = os.fdopen(os.dup(1), "wb")
    requests = os.fdopen(os.dup(0), "rb")
    # The student's prints and reads never touch the conversation.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdin = open(0, closefd=False)
    sys.path.insert(0, WORK)
    os.chdir(WORK)
    objects = Objects()
    while True:
        try:
            request = wire.read_message(requests, objects.get)
        except wire.ProtocolError as err:
            sys.stderr.write("agh: %s\n" % err)
            return 2
        if request is None:
            return 0
        try:
            reply = ["ok", wire.encode(perform(objects, request), objects.ref)]
        except BaseException as err:  # the student's exceptions, SystemExit too
            traceback.print_exc()
            try:
                message = str(err)[:2000]
            except BaseException:
                message = ""
            reply = ["raise", type(err).__name__, message]
        answers.write(wire.dump(reply))
        answers.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    sys.exit(serve())
