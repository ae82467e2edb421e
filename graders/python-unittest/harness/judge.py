"""The judge: runs one hidden unittest test, with the student's code kept in
another process.

Runs as the grader user, started by the python-unittest grader through
agh's ``converse``: its stdout is the student process's stdin and the
student process's stdout is its stdin. The hidden tests are found in
/grader/tests (which the student cannot read); the student's modules named
on the command line are served by the student process: importing one gives
a stand-in whose attributes, calls, items and iteration are requests over
the wire, answered with plain data (see wire.py). Assertions, comparisons
and the verdict happen here, in a process the student's code cannot reach,
and the verdict goes to this process's own stderr as one line:

    agh-judge {"outcome": "passed" | "failed" | "error" | "skipped", ...}

Usage: judge.py TEST_ID [STUDENT_MODULE ...]
"""

import builtins
import importlib.abc
import importlib.util
import io
import json
import os
import sys
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


class StudentError(Exception):
    """An exception the student's code raised, of a type the judge does not share."""


class StudentGone(Exception):
    """The student's process ended or stopped answering."""


class Conversation:
    """Requests to the student's process, one at a time."""

    def __init__(self, requests, answers):
        self.requests = requests
        self.answers = answers
        self.gone = False
        self.asked = 0

    def ask(self, *request):
        self.asked += 1
        if self.gone:
            raise StudentGone("the program is no longer running")
        try:
            self.requests.write(wire.dump(list(request)))
            self.requests.flush()
            reply = wire.read_message(self.answers, self.reference)
        except (OSError, ValueError):
            reply = None
        except wire.ProtocolError as err:
            self.gone = True
            raise StudentGone("the program broke the conversation: %s" % err) from None
        if reply is None:
            self.gone = True
            raise StudentGone("the program ended or closed its output before answering")
        if reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        if reply[0] == "raise" and len(reply) == 3:
            raise rebuild(str(reply[1]), str(reply[2]))
        self.gone = True
        raise StudentGone("the program sent an answer of unknown kind")

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


def main(argv):
    if not argv:
        return {"outcome": "error", "message": "no test named"}
    test_id, module_names = argv[0], argv[1:]
    requests = os.fdopen(os.dup(1), "wb")
    answers = os.fdopen(os.dup(0), "rb")
    verdicts = os.fdopen(os.dup(2), "w")
    # Whatever the tests print stays out of the conversation and the verdict.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = io.StringIO()
    conversation = Conversation(requests, answers)
    sys.meta_path.append(StudentModules(conversation, module_names))
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
                verdict = {"outcome": "error", "message": message_of(describe(err)), "student_raised": True}
            elif not missing or missing in sys.stdlib_module_names:
                raise
            else:
                verdict = {
                    "outcome": "error",
                    "message": message_of("your submission does not provide the module %s" % missing),
                    "student_raised": True,
                }
        except Exception as err:
            # A test module that fails to import after asking the student's
            # code anything failed on the student's answers.
            if not (from_student(err) or conversation.asked):
                raise
            verdict = {"outcome": "error", "message": message_of(describe(err)), "student_raised": True}
        else:
            suite = unittest.defaultTestLoader.loadTestsFromName(test_id)
            result = Recorder()
            suite.run(result)
            outcome, message = outcome_of(result)
            exc = result.exception
            verdict = {
                "outcome": outcome,
                "message": message_of(message if message is not None else describe(exc)),
                "student_raised": from_student(exc),
            }
    except BaseException as err:  # a broken test file, or the judge's own failure
        verdict = {"outcome": "error", "message": message_of(describe(err)), "judge_failed": True}
    verdicts.write("agh-judge %s\n" % json.dumps(verdict))
    verdicts.flush()
    requests.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
