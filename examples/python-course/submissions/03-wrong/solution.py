def fizzbuzz(n):
    return str(n)


def is_prime(n):
    return True


def mean(xs):
    return 0


def word_count(text):
    return {}
