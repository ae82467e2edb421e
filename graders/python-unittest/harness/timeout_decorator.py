"""agh's stand-in for the timeout_decorator package a test may use: the
student's server stops the test's process at the given deadline, and the
test fails with a time limit."""


class TimeoutError(AssertionError):
    """What the package raises at the deadline."""


def timeout(seconds=None, *args, **kwargs):
    """Gives the test its own deadline, in seconds."""

    def mark(func):
        func.__timeout__ = seconds
        return func

    return mark
