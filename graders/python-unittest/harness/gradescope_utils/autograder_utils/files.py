"""Helpers of gradescope_utils about the submission's files."""

import os

# Where agh puts the submission.
SUBMISSION = os.environ.get("AGH_WORK", "/work")


def check_submitted_files(paths, base=SUBMISSION):
    """The paths of ``paths`` that the submission lacks."""
    base = SUBMISSION if base.rstrip("/") == "/autograder/submission" else base
    return [path for path in paths if not os.path.isfile(os.path.join(base, path))]
