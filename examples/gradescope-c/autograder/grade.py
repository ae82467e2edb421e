"""Compiles the student's sum.c and diffs its output on each case in
tests/: NAME.in is the input, NAME.out the expected output, 2 points each.
Writes results.json the way many real autograders do: loosely.

Under agh the student's program runs through agh-as-student, as the
student user: it cannot touch this script, its processes or its results.
On Gradescope (no agh-as-student) it runs as this script's user."""

import json
import pathlib
import shutil
import subprocess
import time

SOURCE = pathlib.Path("/autograder/source")
SUBMISSION = pathlib.Path("/autograder/submission")
RESULTS = pathlib.Path("/autograder/results/results.json")
PROGRAM = "/tmp/sum"
AS_STUDENT = [shutil.which("agh-as-student")] if shutil.which("agh-as-student") else []
started = time.time()


def write(results):
    results["execution_time"] = "%.2f" % (time.time() - started)
    RESULTS.write_text(json.dumps(results))


build = subprocess.run(
    ["gcc", "-O2", "-o", PROGRAM, str(SUBMISSION / "sum.c")],
    capture_output=True, text=True,
)
cases = sorted((SOURCE / "tests").glob("*.in"))
if build.returncode != 0:
    write({
        "score": 0,
        "output": "sum.c did not compile:\n" + build.stderr[-2000:],
        "tests": [{"name": c.stem, "number": str(i + 1), "score": 0, "max_score": 2}
                  for i, c in enumerate(cases)],
    })
    raise SystemExit(0)

tests = []
for i, case in enumerate(cases):
    expected = case.with_suffix(".out").read_text()
    try:
        ran = subprocess.run(AS_STUDENT + [PROGRAM], input=case.read_text(), capture_output=True,
                             text=True, timeout=2)
        if ran.returncode != 0:
            passed, why = False, "exited with status %d" % ran.returncode
        else:
            passed = ran.stdout == expected
            why = "correct" if passed else "wrong output"
    except subprocess.TimeoutExpired:
        passed, why = False, "took longer than 2 s"
    tests.append({
        "name": case.stem,
        "number": str(i + 1),
        "score": 2 if passed else 0,
        "max_score": 2,
        "output": why,
        "visibility": "visible" if i == 0 else "after_due_date",
    })
write({"tests": tests, "stdout_visibility": "hidden"})
