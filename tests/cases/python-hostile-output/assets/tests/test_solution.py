import unittest

from solution import fizzbuzz, is_prime, mean, word_count
import solution


class TestSolution(unittest.TestCase):
    def test_fizzbuzz_basic(self):
        self.assertEqual([solution.fizzbuzz(n) for n in (3, 5, 15, 7)], ["Fizz", "Buzz", "FizzBuzz", "7"])

    def test_fizzbuzz_range(self):
        got = [solution.fizzbuzz(n) for n in range(1, 16)]
        self.assertEqual(got[-1], "FizzBuzz")
        self.assertEqual(got[:5], ["1", "2", "Fizz", "4", "Buzz"])

    def test_is_prime_small(self):
        self.assertEqual([solution.is_prime(n) for n in (1, 2, 3, 4, 9, 11)], [False, True, True, False, False, True])

    def test_is_prime_large(self):
        self.assertTrue(solution.is_prime(7919))
        self.assertFalse(solution.is_prime(7917))

    def test_mean(self):
        self.assertAlmostEqual(solution.mean([1, 2, 3, 4]), 2.5)

    def test_word_count(self):
        self.assertEqual(solution.word_count("the cat and the hat"), {"the": 2, "cat": 1, "and": 1, "hat": 1})
