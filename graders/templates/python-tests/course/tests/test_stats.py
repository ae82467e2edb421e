"""The course's tests of the exercise: `stats.py` with `mean(xs)` and
`spread(xs)` (largest minus smallest). Each test runs in a judge the
student's code cannot reach; the student's module is imported as usual.

Marks, as Gradescope's gradescope_utils spells them (this file runs
unchanged there): @weight(points), @number("1.1"), @visibility("visible",
"hidden", "after_due_date" or "after_published"), @partial_credit(points)
with set_score, @hide_errors("message"), and timeout_decorator's
@timeout(seconds). A test without @weight is worth nothing.
"""

import unittest

from gradescope_utils.autograder_utils.decorators import number, partial_credit, visibility, weight
from timeout_decorator import timeout

import stats


class TestStats(unittest.TestCase):
    @weight(1)
    @number("1")
    def test_mean_of_three(self):
        self.assertEqual(stats.mean([1, 2, 6]), 3)

    @weight(1)
    @number("2")
    @timeout(2)
    def test_spread(self):
        self.assertEqual(stats.spread([4, -1, 7]), 8)

    @partial_credit(2)
    @number("3")
    @visibility("after_due_date")
    def test_hidden_cases(self, set_score=None):
        # Shown after the due date; until then its message (with the
        # expected values) is not: only a visible test's is.
        cases = [([5], 5, 0), ([2, 2], 2, 0), ([3, -3], 0, 6), ([2.5, 1.5], 2, 1)]
        right = sum(1 for xs, m, s in cases if stats.mean(xs) == m and stats.spread(xs) == s)
        set_score(2 * right / len(cases))
        self.assertEqual(right, len(cases))
