"""The grader of an exercise: the student's solution.py reads numbers and
prints their sum. Each case NAME.in of the course files is fed to it, and
its output compared with NAME.out here, in the grader: expected outputs
never enter the sandbox.

Import every module here, at the top: componentize-py snapshots the app at
build time, and imports made inside functions fail when they run.
"""

import agh_grader as agh


class Grader(agh.Grader):
    def describe(self, settings):
        return agh.info(
            "exercise",
            "0.1.0",
            "agh/python-c:1",
            wall_time_ms=2_000,
            # Read by the grader only; never placed in the sandbox.
            assets=[agh.asset("cases", "course:cases", "/grader/cases")],
        )

    def grade(self, context):
        names = sorted(f[: -len(".in")] for f in agh.asset_files("cases") if f.endswith(".in"))
        tests = []
        for name in names:
            given = agh.asset_file("cases", name + ".in")
            expected = agh.asset_file("cases", name + ".out").decode()
            run = agh.Cmd(["python3", "/work/solution.py"]).stdin(given).run()
            test = agh.Test(name)
            if not run.succeeded:
                tests.append(test.failed_with(run, run.stderr_text))
            elif agh.compare.ignoring_whitespace(expected, run.stdout_text):
                tests.append(test.passed())
            else:
                tests.append(test.wrong_output(expected, run.stdout_text))
        return tests
