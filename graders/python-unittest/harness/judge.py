"""The judge: runs hidden unittest tests, one at a time, with the student's
code kept in other processes.

Runs as the grader user, started by the python-unittest grader through
agh's ``converse``: its stdout is the student server's stdin and the
server's stdout is its stdin (see student.py). For each test the judge asks
the server for a fresh process, runs the test, and reads how that process
ended. The hidden tests are found in /grader/tests (which the student cannot
read), imported afresh for each test; the student's modules named on the
command line are served by the test's process: importing one gives a
stand-in whose attributes, calls, items and iteration are requests over the
wire, answered with plain data (see wire.py). Assertions, comparisons and
the verdict happen here, in a process the student's code cannot reach, and
each test's verdict goes to this process's own stderr as one line, as soon
as it is known:

    agh-judge {"test": ID, "outcome": "passed" | "failed" | "error" | "skipped", ...}

When the student's server stops answering, the judge stops; the grader
starts a new batch for the tests that got no verdict.

A test's verdict carries the marks gradescope_utils' decorators left on it
(weight, number, visibility, a partial score, a message that hides the
failure's own); see gradescope_utils/ beside this file.

Usage: judge.py TIMEOUT_MS TEST_ID[=MS] ... -- [STUDENT_MODULE ...]
"""

import builtins
import importlib.abc
import importlib.util
import io
import json
import os
import sys
import time
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.environ.get("AGH_TESTS", "/grader/tests")
sys.path[:0] = [HERE, TESTS]
import wire  # noqa: E402

# Longest message kept in a verdict.
MAX_MESSAGE = 2000
# Longest text kept of a student object's repr or str.
MAX_TEXT = 10000
# How much longer than a test's deadline the judge waits for the student's
# server, which stops the test's process at the deadline, to say so.
GRACE_SECONDS = 2.0


class StudentError(Exception):
    """An exception the student's code raised, of a type the judge does not share."""


class StudentGone(Exception):
    """The student's process ended or stopped answering; ``limit`` names
    the limit that stopped it, if one did."""

    def __init__(self, message, limit=None):
        super().__init__(message)
        self.limit = limit


class ServerStopped(Exception):
    """The student's server no longer answers: the batch ends here."""


def described_end(ended):
    """Why a test's process is gone, from what the server reported."""
    limit = ended.get("limit")
    if limit == "time":
        return "the program ran past the test's time limit"
    if limit == "output":
        return "the program printed more than the test allows"
    if "error" in ended:
        return str(ended["error"])
    if "signal" in ended:
        return "the program was killed by %s before answering" % ended["signal"]
    return "the program ended (exit status %s) before answering" % ended.get("exit")


class Session:
    """The student's server: one fresh process per test, asked for over
    the judge's stdout, and how it ended read back from its stdin."""

    def __init__(self, requests, answers):
        self.requests = requests
        self.answers = answers
        os.set_blocking(requests, False)
        self.stopped = None

    def send(self, message, deadline):
        try:
            wire.send(self.requests, wire.dump(message), deadline)
        except (OSError, TimeoutError) as err:
            self.stop("it stopped reading (%s)" % type(err).__name__)

    def receive(self, make_ref, deadline):
        try:
            reply = wire.read_message(self.answers, make_ref, deadline)
        except TimeoutError:
            self.stop("it did not answer in time")
        except OSError as err:
            self.stop("reading from it failed: %s" % err)
        if reply is None:
            self.stop("it ended")
        return reply

    def stop(self, why):
        self.stopped = why
        raise ServerStopped(why)

    def start(self, test, timeout_ms):
        """Asks for a fresh process for ``test``; the conversation with it."""
        fence = os.urandom(8).hex()
        conversation = Conversation(self, fence, time.monotonic() + timeout_ms / 1000 + GRACE_SECONDS)
        self.send(["fork", fence, test, timeout_ms], conversation.deadline)
        return conversation


class Conversation:
    """Requests to one test's process, one at a time."""

    def __init__(self, session, fence, deadline):
        self.session = session
        self.fence = fence
        self.deadline = deadline
        self.gone = False
        self.asked = 0
        # How the test's process ended, once the server said so.
        self.ended = None
        # The limit that ended it, if the judge knows of one.
        self.limit = None

    def is_end(self, message):
        return (
            len(message) == 3
            and message[0] == "ended"
            and message[1] == self.fence
            and isinstance(message[2], dict)
        )

    def ask(self, *request):
        self.asked += 1
        if self.gone:
            raise StudentGone("the program is no longer running")
        try:
            self.session.send(list(request), self.deadline)
            reply = self.session.receive(self.reference, self.deadline)
        except ServerStopped:
            self.gone = True
            self.limit = "time"
            raise StudentGone("the program stopped answering", limit="time") from None
        except wire.ProtocolError as err:
            self.gone = True
            raise StudentGone("the program broke the conversation: %s" % err) from None
        if self.is_end(reply):
            self.gone = True
            self.ended = reply[2]
            self.limit = self.ended.get("limit")
            raise StudentGone(described_end(self.ended), limit=self.limit)
        if reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        if reply[0] == "raise" and len(reply) == 3:
            raise rebuild(str(reply[1]), str(reply[2]))
        self.gone = True
        raise StudentGone("the program sent an answer of unknown kind")

    def finish(self):
        """Ends the test's process (the judge has its verdict) and waits for
        the server to report its end; ServerStopped when it does not."""
        if self.ended is not None:
            return self.ended
        if self.session.stopped:
            raise ServerStopped(self.session.stopped)
        if not self.gone:
            self.session.send(["done"], self.deadline)
        while True:
            try:
                message = self.session.receive(None, self.deadline)
            except wire.ProtocolError:
                continue  # an answer, or what the process printed on its way out
            if self.is_end(message):
                self.ended = message[2]
                return self.ended

    def reference(self, ident, type_name):
        return StudentObject(self, ident, type_name)

    def argument(self, value):
        """Encodes what the test passes to the student's code."""
        def as_ref(obj):
            if isinstance(obj, StudentObject) and obj._conversation is self:
                return {"$": "ref", "id": obj._id}
            raise wire.Unencodable(type(obj).__name__)
        try:
            return wire.encode(value, as_ref)
        except wire.Unencodable as err:
            raise TypeError("a %s cannot be passed to the student's code, only plain data" % err) from None


def rebuild(type_name, message):
    """The judge's own exception for one the student's code raised, marked
    as the student's."""
    kind = getattr(builtins, type_name, None)
    exc = None
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            exc = kind(message)
        except Exception:
            pass
    if exc is None:
        exc = StudentError("%s: %s" % (type_name, message))
    exc.agh_from_student = True
    return exc


def from_student(exc):
    return exc is not None and (getattr(exc, "agh_from_student", False) or isinstance(exc, StudentGone))


def expect(value, kind, what):
    if type(value) is not kind:
        raise StudentGone("the program answered %s with a %s" % (what, type(value).__name__))
    return value


class StudentObject:
    """Stands for an object in the student's process.

    Equality and hashing are by identity: the student's code never decides
    whether two things are equal. Everything else the test asks of the
    object (an attribute, a call, its length or text) is the student's
    answer, given as plain data.
    """

    __slots__ = ("_conversation", "_id", "_type")

    def __init__(self, conversation, ident, type_name):
        object.__setattr__(self, "_conversation", conversation)
        object.__setattr__(self, "_id", ident)
        object.__setattr__(self, "_type", type_name)

    def _ask(self, kind, *args):
        return self._conversation.ask(kind, self._id, *args)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._ask("getattr", name)

    def __setattr__(self, name, value):
        self._ask("setattr", name, self._conversation.argument(value))

    def __call__(self, *args, **kwargs):
        encode = self._conversation.argument
        return self._ask("call", [encode(a) for a in args], {"$": "dict", "v": [[k, encode(v)] for k, v in kwargs.items()]})

    def __getitem__(self, key):
        return self._ask("getitem", self._conversation.argument(key))

    def __setitem__(self, key, value):
        self._ask("setitem", self._conversation.argument(key), self._conversation.argument(value))

    def __len__(self):
        length = expect(self._ask("len"), int, "len()")
        if length < 0:
            raise ValueError("__len__() should return >= 0")
        return length

    def __bool__(self):
        return expect(self._ask("bool"), bool, "bool()")

    def __contains__(self, item):
        return expect(self._ask("contains", self._conversation.argument(item)), bool, "'in'")

    def __iter__(self):
        return iter(expect(self._ask("list"), list, "iteration"))

    def __repr__(self):
        return expect(self._ask("repr"), str, "repr()")[:MAX_TEXT]

    def __str__(self):
        return expect(self._ask("str"), str, "str()")[:MAX_TEXT]

    def __eq__(self, other):
        return isinstance(other, StudentObject) and other._id == self._id

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(("student-object", self._id))


class StudentModule(types.ModuleType):
    """A student's module: attributes come from the student's process."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        remote = self.__dict__["_agh_remote"]
        return remote._ask("getattr", name)


class StudentModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the named student modules (and their submodules) from the
    student's process; consulted only after the judge's own paths, so a
    student file can never stand in for a test module or the library."""

    def __init__(self, conversation, names):
        self.conversation = conversation
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in self.names:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=True)

    def create_module(self, spec):
        try:
            remote = self.conversation.ask("import", spec.name)
        except Exception as err:
            failed = ImportError("importing %s failed: %s" % (spec.name, describe(err)))
            failed.agh_from_student = True
            raise failed from None
        if not isinstance(remote, StudentObject):
            failed = ImportError("the program did not give module %s" % spec.name)
            failed.agh_from_student = True
            raise failed
        module = StudentModule(spec.name)
        module.__dict__["_agh_remote"] = remote
        return module

    def exec_module(self, module):
        pass


def message_of(text):
    """A message for the verdict line: clipped, and valid UTF-8 whatever the
    student's code raised (a lone surrogate such as "\\ud800" is kept as
    that escape, not as a character no JSON decoder outside Python takes)."""
    return text.strip()[:MAX_MESSAGE].encode("utf-8", "backslashreplace").decode("utf-8")


def outcome_of(result):
    """The single test's outcome and, for a skip, its reason. Failures are
    described from the exception alone, never a traceback, so no hidden
    test source reaches the student."""
    if result.failures:
        return "failed", None
    if result.errors:
        return "error", None
    if result.skipped:
        return "skipped", result.skipped[0][1]
    if result.testsRun == 1 and result.wasSuccessful():
        return "passed", ""
    return "error", "the test id names %d tests, not one" % result.testsRun


class Recorder(unittest.TestResult):
    """Keeps the exception itself, not its formatted traceback."""

    def __init__(self):
        super().__init__()
        self.exception = None

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.exception = self.exception or err[1]

    def addError(self, test, err):
        super().addError(test, err)
        self.exception = self.exception or err[1]


def describe(exc):
    if exc is None:
        return ""
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, StudentError):
        return "your code raised %s" % text
    if isinstance(exc, (StudentGone, AssertionError, ImportError)):
        return text
    if from_student(exc):
        return "your code raised %s: %s" % (name, text)
    return "%s: %s" % (name, text)


def run_test(test_id, conversation, module_names):
    """One test's verdict, with the student's modules served by ``conversation``."""
    finder = StudentModules(conversation, module_names)
    sys.meta_path.append(finder)
    try:
        try:
            # Imported here, not by the loader, so that a failing import is
            # described by its exception rather than a traceback.
            importlib.import_module(test_id.split(".")[0])
        except ModuleNotFoundError as err:
            # A module the tests import that neither the submission nor the
            # standard library provides: the student did not hand it in (or
            # handed in something else under its name).
            missing = (err.name or "").split(".")[0]
            if from_student(err):
                # Raised by the student's own code while the tests imported
                # it (a module-level __getattr__, an import inside it).
                return {"outcome": "error", "message": message_of(describe(err)), "student_raised": True}
            if not missing or missing in sys.stdlib_module_names:
                raise
            return {
                "outcome": "error",
                "message": message_of("your submission does not provide the module %s" % missing),
                "student_raised": True,
            }
        except Exception as err:
            # A test module that fails to import after asking the student's
            # code anything failed on the student's answers.
            if not (from_student(err) or conversation.asked):
                raise
            return {"outcome": "error", "message": message_of(describe(err)), "student_raised": True}
        suite = unittest.defaultTestLoader.loadTestsFromName(test_id)
        # Read before the run, which empties the suite.
        cases = test_cases(suite)
        result = Recorder()
        suite.run(result)
        outcome, message = outcome_of(result)
        exc = result.exception
        verdict = {
            "outcome": outcome,
            "message": message_of(message if message is not None else describe(exc)),
            "student_raised": from_student(exc),
        }
        verdict.update(marks_of(cases))
        if outcome != "passed" and "hide_errors" in verdict:
            # Staff's own words for the failure, shown whatever the visibility.
            verdict["message"] = verdict.pop("hide_errors")
            verdict["staff_message"] = True
        return verdict
    except ServerStopped:
        raise
    except BaseException as err:  # a broken test file, or the judge's own failure
        return {"outcome": "error", "message": message_of(describe(err)), "judge_failed": True}
    finally:
        sys.meta_path.remove(finder)
        forget_test_modules(module_names)


# The marks gradescope_utils' decorators leave on a test method, as the
# verdict names them.
MARKS = {
    "__weight__": "weight",
    "__number__": "number",
    "__visibility__": "visibility",
    "__score__": "score",
    "__hide_errors__": "hide_errors",
}


def test_cases(suite):
    """The test cases of ``suite``, in order."""
    cases = []
    pending = [suite]
    while pending:
        item = pending.pop(0)
        if isinstance(item, unittest.TestSuite):
            pending[:0] = list(item)
        else:
            cases.append(item)
    return cases


def marks_of(cases):
    """The decorators' marks on the one test method of ``cases``, read after
    it ran (a partial score is set while it runs)."""
    if len(cases) != 1:
        return {}
    case = cases[0]
    method = getattr(type(case), getattr(case, "_testMethodName", ""), None)
    marks = {}
    for attribute, name in MARKS.items():
        value = getattr(method, attribute, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            marks[name] = float(value)
        elif value is not None:
            marks[name] = message_of(str(value))
    return marks


def forget_test_modules(module_names):
    """Drops the tests' modules and the student's stand-ins, so the next test
    imports both afresh, as a test run on its own would."""
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        from_tests = (getattr(module, "__file__", None) or "").startswith(TESTS + os.sep)
        if from_tests or top in module_names or isinstance(module, StudentModule):
            del sys.modules[name]


def judge(test_id, session, timeout_ms, module_names):
    """Runs one test in a fresh process of the student's; its verdict."""
    sys.stdout = sys.stderr = io.StringIO()
    conversation = session.start(test_id, timeout_ms)
    verdict = run_test(test_id, conversation, module_names)
    try:
        ended = conversation.finish()
    except ServerStopped:
        ended = {}  # the verdict stands; the batch ends after it
    if verdict["outcome"] != "passed" and conversation.limit:
        verdict["limit"] = conversation.limit
    verdict["output"] = message_of(str(ended.get("output", "")))
    return verdict


def main(argv):
    try:
        timeout_ms = int(argv[0])
        split = argv.index("--")
    except (IndexError, ValueError):
        sys.stderr.write("usage: judge.py TIMEOUT_MS TEST_ID[=MS] ... -- [STUDENT_MODULE ...]\n")
        return 2
    tests, module_names = argv[1:split], argv[split + 1 :]
    session = Session(os.dup(1), wire.Lines(os.dup(0)))
    verdicts = os.fdopen(os.dup(2), "w")
    # Whatever the tests print stays out of the conversation and the verdict.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = open(os.devnull)
    for test in tests:
        # TEST_ID, or TEST_ID=MS for a test with a deadline of its own.
        test_id, _, own = test.partition("=")
        try:
            verdict = judge(test_id, session, int(own) if own.isdigit() else timeout_ms, module_names)
        except ServerStopped:
            break  # before the test began: the grader runs it in a new batch
        verdicts.write("agh-judge %s\n" % json.dumps(dict(verdict, test=test_id)))
        verdicts.flush()
        if session.stopped:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
