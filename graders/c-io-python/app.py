"""Grades the C course by input and output: the Python twin of graders/c-io.

The submission's main.c is compiled in the sandbox; each case NAME.in of
the course files is fed to the program and its output compared, inside the
grader, with NAME.out, ignoring whitespace. Expected outputs never enter
the sandbox. A case that brings the sandbox down costs only itself.
"""

import agh_grader as agh

CASES = "cases"
BUILD = ["gcc", "-O2", "-std=c11", "-Wall", "-o", "/work/prog", "/work/main.c", "-lm"]


def build():
    return agh.Cmd(BUILD).timeout_ms(30_000).run()


def why(run):
    if run.signal:
        return "killed by " + run.signal
    return "exit code %s" % run.exit_code


class Grader(agh.Grader):
    def describe(self, settings):
        return agh.info(
            "c-io-python",
            "1.0.0",
            "agh/python-c:1",
            wall_time_ms=3_000,
            memory_bytes=256 * 1024 * 1024,
            # tmpfs is held in memory: room for a full /work and the programs.
            tmpfs_bytes=128 * 1024 * 1024,
            # Read by the grader only; declared with a grader-only target.
            assets=[agh.asset(CASES, "course:cases", "/grader/cases")],
        )

    def grade(self, context):
        names = sorted(f[: -len(".in")] for f in agh.asset_files(CASES) if f.endswith(".in"))
        if not names:
            raise ValueError("the cases asset holds no NAME.in files")
        compiled = build()
        if not compiled.succeeded:
            feedback = compiled.stderr_text[-2000:]
            return agh.Report(
                [agh.Test(name).failed(agh.Verdict.COMPILE_ERROR, feedback) for name in names],
                "The program does not compile.",
            )
        tests = []
        down = None
        for name in names:
            test = agh.Test(name)
            if down is not None:
                tests.append(test.not_run(down))
                continue
            given = agh.asset_file(CASES, name + ".in")
            expected = agh.asset_file(CASES, name + ".out").decode()
            try:
                run = agh.Cmd(["/work/prog"]).stdin(given).run()
            except agh.HostError as err:
                if err.kind != "sandbox-lost":
                    raise
                tests.append(test.not_run(err.detail))
                lost = True
            else:
                if not run.succeeded:
                    tests.append(test.failed_with(run, why(run)))
                elif agh.compare.ignoring_whitespace(expected, run.stdout_text):
                    tests.append(test.passed())
                else:
                    tests.append(test.failed(agh.Verdict.WRONG, "wrong output"))
                lost = run.sandbox_lost
            # A case that brought the sandbox down costs only itself.
            if lost:
                down = agh.reset_after_loss()
                if down is None:
                    build()
        return tests
