"""Write agh course graders in Python.

A grader is a WebAssembly component built with componentize-py. Subclass
:class:`Grader` in your app module, name the subclass ``Grader``, and write
``describe`` and ``grade`` in plain Python::

    import agh_grader as agh

    class Grader(agh.Grader):
        def describe(self, settings):
            return agh.info("hello", "1.0.0", "agh/python-c:1")

        def grade(self, context):
            greeting = context.setting("greeting", "hello")
            run = agh.Cmd(["python3", "/work/hello.py"]).timeout_ms(2000).run()
            test = agh.Test("prints the greeting", 1)
            if run.succeeded and agh.compare.ignoring_whitespace(greeting, run.stdout_text):
                return [test.passed()]
            return [test.failed_with(run, "expected " + greeting)]

``agh build`` (or ``componentize-py -d wit -w grader-plugin componentize
app -o grader.wasm`` with this package on the path) makes the component.

How errors reach agh:

- :class:`SubmissionError` (raise it yourself), and host errors caused by
  the student (a state they left, a sandbox they brought down), make the
  submission ungradable: scored 0 with the message, never retried.
- Any other exception is the grader's failure (plugin-error, never charged
  to the student), reported to the operator with its type, message and the
  line it came from.

Gotchas of componentize-py: import every module at the top of your app
(imports made inside functions fail at run time: only the build-time
snapshot has them); the grader's budget (``fuel``) counts Python bytecode
too, so a Python grader declares more than a Rust one (this SDK's default
does).
"""

import traceback
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Union

from componentize_py_types import Err
from wit_world.imports import assets as _assets
from wit_world.imports import log as _log
from wit_world.imports import sandbox as _sandbox
from wit_world.imports import submission as _submission
from wit_world.imports import types as _types

from . import compare, lines
from .feedback import MAX_FEEDBACK_BYTES, clip_feedback

__all__ = [
    "API_VERSION",
    "Cmd",
    "Context",
    "Grader",
    "HostError",
    "Report",
    "Result",
    "SubmissionError",
    "Test",
    "TestResult",
    "Verdict",
    "Visibility",
    "asset",
    "asset_file",
    "asset_files",
    "compare",
    "info",
    "lines",
    "log_info",
    "log_warn",
    "place_asset",
    "read_file",
    "reset_after_loss",
    "reset_sandbox",
    "submission_file",
    "submission_files",
    "write_file",
]

#: The contract version this SDK speaks.
API_VERSION = "0.2.0"

Verdict = _types.Verdict
Visibility = _types.Visibility
TestResult = _types.TestResult
GraderInfo = _types.GraderInfo


class SubmissionError(Exception):
    """Raise to say the submission cannot be graded because of what the
    student did: it is scored 0 with this message, and not retried."""


class HostError(Exception):
    """An error the host returned for a request: ``kind`` is one of
    ``refused``, ``not-found``, ``submission-state``, ``sandbox-lost``,
    ``too-large``, and ``detail`` the host's own words. Uncaught, it is the student's when :attr:`students` is
    true and the grader's otherwise."""

    def __init__(self, kind: str, detail: str):
        super().__init__("%s: %s" % (kind, detail))
        self.kind = kind
        self.detail = detail

    @property
    def message(self) -> str:
        """The host's own words: :attr:`detail` (the earlier name)."""
        return self.detail

    @property
    def students(self) -> bool:
        """True when the student's doing caused it."""
        return self.kind in ("submission-state", "sandbox-lost")


_ERROR_KINDS = {
    _types.Error_Refused: "refused",
    _types.Error_NotFound: "not-found",
    _types.Error_SubmissionState: "submission-state",
    _types.Error_SandboxLost: "sandbox-lost",
    _types.Error_TooLarge: "too-large",
}


def _host(call, *args):
    """Calls a host function, turning its error into a :class:`HostError`."""
    try:
        return call(*args)
    except Err as err:
        kind = _ERROR_KINDS.get(type(err.value), "refused")
        raise HostError(kind, str(getattr(err.value, "value", err.value))) from None


# What a grader asks for ------------------------------------------------------


def info(
    name: str,
    version: str,
    image: str,
    *,
    wall_time_ms: int = 10_000,
    memory_bytes: int = 512 * 1024 * 1024,
    processes: int = 64,
    output_bytes: int = 1024 * 1024,
    file_size_bytes: int = 64 * 1024 * 1024,
    tmpfs_bytes: int = 256 * 1024 * 1024,
    fuel: int = 100_000_000_000,
    grader_wall_time_ms: int = 300_000,
    assets: Sequence["_types.Asset"] = (),
) -> "_types.GraderInfo":
    """What ``describe`` returns: the grader's name and version, the image
    its sandboxes use, their limits, its own budget (fuel: about one
    WebAssembly instruction each; Python needs many per line) and the
    course files it may place."""
    return _types.GraderInfo(
        name=name,
        version=version,
        api_version=API_VERSION,
        image=image,
        limits=_types.Limits(
            wall_time_ms=wall_time_ms,
            memory_bytes=memory_bytes,
            processes=processes,
            output_bytes=output_bytes,
            file_size_bytes=file_size_bytes,
            tmpfs_bytes=tmpfs_bytes,
        ),
        budget=_types.Budget(fuel=fuel, wall_time_ms=grader_wall_time_ms),
        assets=list(assets),
    )


def asset(name: str, source: str, target: str) -> "_types.Asset":
    """A course file the grader may place: ``source`` is ``SOURCE:PATH`` as
    the operator grants it; ``target`` is below ``/assets`` (students read
    it) or ``/grader`` (they cannot)."""
    return _types.Asset(name=name, source=source, target=target)


# Commands ---------------------------------------------------------------------


class Result:
    """What happened to a command (wraps the host's command result)."""

    def __init__(self, raw: "_types.CommandResult"):
        self.raw = raw

    def __getattr__(self, name):
        return getattr(self.raw, name)

    @property
    def stdout_text(self) -> str:
        """Stdout as text (invalid UTF-8 replaced)."""
        return self.raw.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        """Stderr as text (invalid UTF-8 replaced)."""
        return self.raw.stderr.decode("utf-8", "replace")

    @property
    def succeeded(self) -> bool:
        """True when the command exited 0 within every limit."""
        return self.raw.verdict is None and self.raw.exit_code == 0

    @property
    def verdict(self) -> Optional["_types.Verdict"]:
        """The verdict read from the run alone; None when it exited 0."""
        return self.raw.verdict

    def __repr__(self):
        return "Result(exit_code=%r, signal=%r, verdict=%r)" % (
            self.raw.exit_code,
            self.raw.signal,
            self.raw.verdict,
        )


class Cmd:
    """A command to run in the sandbox, built step by step. No shell is
    involved: ``argv`` is passed as it is."""

    def __init__(self, argv: Iterable[str]):
        self._argv = list(argv)
        self._stdin = b""
        self._cwd: Optional[str] = None
        self._env: List[tuple] = []
        self._user = _types.User.STUDENT
        self._wall: Optional[int] = None
        self._output: Optional[int] = None

    def args(self, *more: str) -> "Cmd":
        """Appends arguments."""
        self._argv.extend(more)
        return self

    def stdin(self, data: Union[bytes, str]) -> "Cmd":
        """Feeds ``data`` to stdin."""
        self._stdin = data.encode() if isinstance(data, str) else bytes(data)
        return self

    def cwd(self, folder: str) -> "Cmd":
        """Runs in ``folder`` instead of the user's own (``/work`` for the
        student, ``/grader`` for the grader user)."""
        self._cwd = folder
        return self

    def env(self, name: str, value: str) -> "Cmd":
        """Adds an environment variable."""
        self._env.append((name, value))
        return self

    def as_grader(self) -> "Cmd":
        """Runs as the grader user, who can read ``/grader``; it starts in
        ``/grader`` with ``TMPDIR`` there, never among the student's files."""
        self._user = _types.User.GRADER
        return self

    def timeout_ms(self, ms: int) -> "Cmd":
        """The deadline: shorter than the sandbox's, or longer up to the
        operator's ceiling."""
        self._wall = ms
        return self

    def output_bytes(self, cap: int) -> "Cmd":
        """Keeps at most ``cap`` bytes of each output stream."""
        self._output = cap
        return self

    def _command(self) -> "_types.Command":
        return _types.Command(
            argv=list(self._argv),
            stdin=self._stdin,
            cwd=self._cwd,
            env=list(self._env),
            user=self._user,
            wall_time_ms=self._wall,
            output_bytes=self._output,
        )

    def run(self) -> Result:
        """Runs the command in the sandbox. A student's failure (a crash, a
        timeout) is a :class:`Result`, not an exception."""
        return Result(_host(_sandbox.run, self._command()))

    def converse(self, student: "Cmd"):
        """Runs this command as a judge beside ``student``, each one's stdout
        feeding the other's stdin; returns ``(judge, student)`` results. Make
        the judge :meth:`as_grader` and let it report on its own stderr."""
        both = _host(_sandbox.converse, self._command(), student._command())
        return Result(both.judge), Result(both.student)


# Files ------------------------------------------------------------------------


def write_file(path: str, contents: Union[bytes, str], read_only: bool = False) -> None:
    """Writes a file into the sandbox (below ``/work``, ``/grader`` or ``/assets``)."""
    data = contents.encode() if isinstance(contents, str) else bytes(contents)
    _host(_sandbox.write_file, path, data, read_only)


def read_file(path: str, max_bytes: int = 1024 * 1024) -> bytes:
    """Reads up to ``max_bytes`` of a regular file in the sandbox."""
    return _host(_sandbox.read_file, path, max_bytes)


def place_asset(name: str) -> None:
    """Places a declared asset at its declared target."""
    _host(_sandbox.place_asset, name)


def reset_sandbox(*assets: str) -> None:
    """Replaces the sandbox with a fresh one holding the pristine
    submission, placing the named assets again."""
    _host(_sandbox.reset, list(assets))


def reset_after_loss(*assets: str) -> Optional[str]:
    """After a test that brought the sandbox down: a fresh sandbox and
    ``None``; or, once the submission's programs have brought it down more
    often than the host resets it, why, and the grader fails the tests it
    has not run with :meth:`Test.not_run`. Neither is the grader's failure."""
    try:
        reset_sandbox(*assets)
    except HostError as err:
        if err.kind != "sandbox-lost":
            raise
        return err.detail
    return None


def submission_files() -> List[str]:
    """The submission's files, from the host's pristine copy."""
    return _host(_submission.list_files)


def submission_file(path: str) -> bytes:
    """One submission file's bytes, from the host's pristine copy."""
    return _host(_submission.read_file, path)


def asset_files(name: str) -> List[str]:
    """The files of a declared asset."""
    return _host(_assets.list_files, name)


def asset_file(name: str, path: str) -> bytes:
    """One file of a declared asset, read by the grader (it never enters the sandbox)."""
    return _host(_assets.read, name, path)


def log_info(message: str) -> None:
    """Logs for the operator."""
    _log.log(_log.Level.INFO, message)


def log_warn(message: str) -> None:
    """Logs a warning for the operator."""
    _log.log(_log.Level.WARN, message)


# Results ----------------------------------------------------------------------


class Test:
    """One test's result, built from its name and points:
    ``Test("adds", 2).visibility(Visibility.AFTER_DUE_DATE).passed()``."""

    def __init__(self, name: str, points: float = 1.0, visibility: Optional["_types.Visibility"] = None):
        self.name = name
        self.points = points
        self.shown = _types.Visibility.VISIBLE if visibility is None else visibility

    def __repr__(self):
        return "Test(%r, %r, %r)" % (self.name, self.points, self.shown)

    def visibility(self, visibility: "_types.Visibility") -> "Test":
        """Sets who may see the result."""
        self.shown = visibility
        return self

    def hidden(self) -> "Test":
        """Never shown to the student."""
        return self.visibility(_types.Visibility.HIDDEN)

    def scored(self, score: float, verdict: "_types.Verdict", output: str = "") -> "_types.TestResult":
        """``score`` points with the verdict given; ``output`` past
        :data:`MAX_FEEDBACK_BYTES` is clipped (:func:`clip_feedback`)."""
        return _types.TestResult(
            name=self.name,
            score=float(score),
            max_score=float(self.points),
            verdict=verdict,
            output=clip_feedback(output),
            visibility=self.shown,
        )

    def passed(self, output: str = "") -> "_types.TestResult":
        """Full marks."""
        return self.scored(self.points, _types.Verdict.ACCEPTED, output)

    def failed(self, verdict: "_types.Verdict" = _types.Verdict.WRONG, output: str = "") -> "_types.TestResult":
        """No marks, with the verdict given."""
        return self.scored(0.0, verdict, output)

    def wrong_output(self, expected: str, got: str) -> "_types.TestResult":
        """No marks, ``wrong``: the program printed ``got`` where
        ``expected`` was due. The feedback is :func:`lines.first_difference`
        with this test's visibility: the expected line is named only to a
        visible test."""
        feedback = "wrong output: " + lines.first_difference(expected, got, self.shown)
        return self.failed(_types.Verdict.WRONG, feedback)

    def not_run(self, why: str) -> "_types.TestResult":
        """No marks: the test could not run because the submission's
        programs kept bringing the sandbox down (``why`` from
        :func:`reset_after_loss`)."""
        return self.failed(_types.Verdict.RESOURCE_LIMIT, "not run: " + why)

    def failed_with(self, run: Result, output: str = "") -> "_types.TestResult":
        """No marks; the verdict comes from the run (a crash, a timeout), or
        is ``wrong`` when the run itself was clean."""
        return self.failed(run.verdict or _types.Verdict.WRONG, output)


@dataclass
class Report:
    """A grader's report: its tests and overall feedback."""

    tests: List["_types.TestResult"]
    output: str = ""


@dataclass
class Context:
    """What ``grade`` is told about the submission."""

    submission: str
    settings: Dict[str, str] = field(default_factory=dict)

    def setting(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The course setting ``name`` from the operator's configuration."""
        return self.settings.get(name, default)


# The export -------------------------------------------------------------------


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return " (%s line %d, in %s)" % (last.filename, last.lineno, last.name)


def _grade_error(err: BaseException):
    if isinstance(err, SubmissionError):
        return _types.GradeError_Submission(str(err))
    if isinstance(err, HostError) and err.students:
        return _types.GradeError_Submission(str(err))
    return _types.GradeError_Grader("%s: %s%s" % (type(err).__name__, err, _where(err)))


class Grader:
    """Base of your grader. Write ``describe(self, settings)`` (settings a
    dict; return :func:`info`) and ``grade(self, context)`` (a
    :class:`Context`; return a list of test results or a :class:`Report`).
    The SDK adapts both to the contract and turns exceptions into the
    right kind of failure."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        describe = cls.__dict__.get("describe")
        grade = cls.__dict__.get("grade")
        if describe is not None:

            def describe_export(self, settings):
                return describe(self, dict(settings))

            cls.describe = describe_export
        if grade is not None:

            def grade_export(self, context):
                try:
                    out = grade(self, Context(context.submission, dict(context.settings)))
                except Exception as err:  # every failure reaches the operator
                    raise Err(_grade_error(err)) from None
                if isinstance(out, Report):
                    return _types.Report(tests=list(out.tests), output=out.output)
                return _types.Report(tests=list(out), output="")

            cls.grade = grade_export

    def describe(self, settings):  # pragma: no cover - always overridden
        raise NotImplementedError("write describe(self, settings) in your Grader")

    def grade(self, context):  # pragma: no cover - always overridden
        raise NotImplementedError("write grade(self, context) in your Grader")
