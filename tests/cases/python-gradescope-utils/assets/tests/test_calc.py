import unittest

from gradescope_utils.autograder_utils.decorators import hide_errors, number, partial_credit, visibility, weight
from timeout_decorator import timeout

import calc


class TestCalc(unittest.TestCase):
    @weight(2)
    @number("1")
    def test_add(self):
        """add adds"""
        self.assertEqual(calc.add(2, 3), 5)

    @weight(3)
    @visibility("after_due_date")
    @hide_errors("The hidden product test failed.")
    def test_hidden_mul(self):
        self.assertEqual(calc.mul(6, 7), 42)

    @partial_credit(4)
    def test_squares(self, set_score=None):
        cases = [(1, 1), (2, 4), (3, 9), (4, 16)]
        right = sum(1 for x, want in cases if calc.square(x) == want)
        set_score(right)
        self.assertEqual(right, len(cases))

    @weight(1)
    @timeout(1)
    def test_fast(self):
        self.assertEqual(calc.identity(5), 5)

    def test_unweighted(self):
        self.assertEqual(calc.add(0, 0), 0)
