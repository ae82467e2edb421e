"""The student's side of a conversation with the judge.

Runs as the student user in /work, once per batch of tests: a small server
that has paid the interpreter's start-up once and forks a fresh process for
each test. That process imports the student's modules when the judge asks
and answers the judge's requests (get an attribute, call, index, iterate,
...) one line at a time, over the server's stdin and the stdout it had when
it started; the student's own prints go to a pipe the server reads, so they
never mix with the answers. The server stops a test's process at its
deadline or past the output cap, and kills whatever it left before the next
test starts. Whatever happens in these processes, the judge only ever
receives plain data (see wire.py) and decides every verdict itself.

``student.py --check`` compiles every .py file in /work without running any
of them, and lists the syntax errors.
"""

import importlib
import os
import select
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

# Where the submission is.
WORK = os.environ.get("AGH_WORK", "/work")
# Most .py files the syntax check looks at.
MAX_CHECKED_FILES = 10000
# Most items one iteration sends back.
MAX_ITEMS = 100000
# A test's process that prints more than this is stopped (an output limit).
OUTPUT_BYTES = 4 * 1024 * 1024
# What the judge gets of a test's output, from its end.
TAIL_BYTES = 2000
# What staff see of each test's output on this process's stderr.
SHOWN_BYTES = 64 * 1024


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


def converse(requests, answers):
    """One test's conversation, in a process of its own: answers the judge's
    requests until it says ``done``."""
    objects = Objects()
    while True:
        try:
            request = wire.read_message(requests, objects.get)
        except wire.ProtocolError as err:
            sys.stderr.write("agh: %s\n" % err)
            return 2
        if request is None:
            return 0
        if request == ["done"]:
            return 0
        try:
            reply = ["ok", wire.encode(perform(objects, request), objects.ref)]
        except BaseException as err:  # the student's exceptions, SystemExit too
            try:
                traceback.print_exc()
            except BaseException:
                pass  # an output the student's code closed or broke
            try:
                message = str(err)[:2000]
            except BaseException:
                message = ""
            reply = ["raise", type(err).__name__, message]
        wire.send(answers, wire.dump(reply))


class Wakeups:
    """A descriptor that becomes readable when a child process ends."""

    def __init__(self):
        self.read, write = os.pipe()
        os.set_blocking(self.read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write)
        signal.signal(signal.SIGCHLD, lambda _signal, _frame: None)

    def drain(self):
        try:
            while os.read(self.read, 512):
                pass
        except BlockingIOError:
            pass


def end_status(status):
    """How a test's process ended, as the judge reads it."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return {"signal": signal.Signals(number).name}
        except ValueError:
            return {"signal": str(number)}
    return {"exit": os.waitstatus_to_exitcode(status)}


def run_one(requests, answers, wakeups, test, timeout_ms):
    """Forks a fresh process for one test and watches it: its output kept
    (the tail for the judge, the start for staff on this process's stderr),
    killed at the deadline or past the output cap, and every process it
    left killed once it ends, so the next test starts alone."""
    started = time.monotonic()
    deadline = started + timeout_ms / 1000
    out_read, out_write = os.pipe()
    try:
        pid = os.fork()
    except OSError as err:
        os.close(out_read)
        os.close(out_write)
        return {"error": "the test's process could not start: %s" % err.strerror}
    if pid == 0:
        status = 2
        try:
            os.close(out_read)
            os.close(wakeups.read)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.dup2(out_write, 1)
            os.dup2(out_write, 2)
            os.close(out_write)
            status = converse(requests, answers)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(status)
    os.close(out_write)
    sys.stderr.write("agh: --- %s ---\n" % test)
    tail = bytearray()
    total = 0
    shown = 0
    limit = None
    status = None
    watched = [out_read, wakeups.read]
    while status is None:
        done, status_word = os.waitpid(pid, os.WNOHANG)
        if done:
            status = status_word
            break
        left = deadline - time.monotonic()
        if left <= 0:
            limit = "time"
            break
        ready = select.select(watched, [], [], left)[0]
        if wakeups.read in ready:
            wakeups.drain()
        if out_read in ready:
            chunk = os.read(out_read, 1 << 16)
            if not chunk:
                watched.remove(out_read)
                continue
            total += len(chunk)
            if shown < SHOWN_BYTES:
                part = chunk[: SHOWN_BYTES - shown]
                sys.stderr.buffer.write(part)
                sys.stderr.flush()
                shown += len(part)
            tail = (tail + chunk)[-TAIL_BYTES:]
            if total > OUTPUT_BYTES:
                limit = "output"
                break
    # Every process of the student's but this one: the test's process if
    # it is still running, and whatever it started.
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    if status is None:
        status = os.waitpid(pid, 0)[1]
    os.close(out_read)
    ended = end_status(status)
    ended["ms"] = round((time.monotonic() - started) * 1000)
    ended["output"] = tail.decode("utf-8", "replace")
    if limit:
        ended["limit"] = limit
    return ended


def serve():
    """Serves the judge's tests, one fresh process each: the judge sends
    ``["fork", FENCE, TEST, TIMEOUT_MS]``, talks to that process until it
    says ``done``, and reads ``["ended", FENCE, {...}]`` from this one."""
    answers = os.dup(1)
    requests = wire.Lines(os.dup(0))
    # The student's prints and reads never touch the conversation.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdin = open(0, closefd=False)
    sys.path.insert(0, WORK)
    os.chdir(WORK)
    wakeups = Wakeups()
    while True:
        try:
            request = wire.read_message(requests)
        except wire.ProtocolError:
            continue  # what a test's process left unread
        if request is None:
            return 0
        if len(request) != 4 or request[0] != "fork" or type(request[3]) is not int:
            continue
        _, fence, test, timeout_ms = request
        ended = run_one(requests, answers, wakeups, str(test), max(1, timeout_ms))
        try:
            wire.send(answers, wire.dump(["ended", fence, wire.encode(ended)]))
        except OSError:
            return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    sys.exit(serve())
