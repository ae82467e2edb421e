import time


def add(a, b):
    return a + b


def mul(a, b):
    return a + b


def square(x):
    return x * x if x < 3 else 0


def identity(x):
    time.sleep(2)
    return x
