# Wrong answers; test_solution.py beside it stands in for the hidden tests.


def fizzbuzz(n):
    return None


def is_prime(n):
    return None


def mean(xs):
    return None


def word_count(text):
    return None

