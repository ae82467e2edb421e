import unittest

from gradescope_utils.autograder_utils.decorators import number, visibility, weight

import calc


class TestCalc(unittest.TestCase):
    @weight(2)
    @number("1")
    def test_add(self):
        """adds"""
        self.assertEqual(calc.add(2, 3), 5)

    @weight(2)
    @number("2")
    def test_mean(self):
        """averages"""
        self.assertEqual(calc.mean([1, 2, 3, 6]), 3)

    @weight(3)
    @number("3")
    @visibility("after_due_date")
    def test_mean_of_nothing(self):
        """the mean of nothing is None"""
        self.assertIsNone(calc.mean([]))
