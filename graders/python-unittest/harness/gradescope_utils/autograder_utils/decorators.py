"""The test decorators of gradescope_utils, as agh's judge reads them.

Each marks the test method with the attribute Gradescope's runner reads:
``__weight__``, ``__number__``, ``__visibility__``, ``__tags__``,
``__leaderboard_column__``, ``__hide_errors__``; ``partial_credit`` passes
the test a ``set_score`` that records ``__score__``.
"""

import functools


def _mark(attribute, doc):
    """A decorator class that sets ``attribute`` on the test method to its
    one argument."""

    class Mark:
        __doc__ = doc

        def __init__(self, val):
            self.val = val

        def __call__(self, func):
            setattr(func, attribute, self.val)
            return func

    return Mark


weight = _mark("__weight__", "The test's points.")
number = _mark("__number__", "The test's number, for ordering and display.")
visibility = _mark("__visibility__", "Who sees the result: visible, hidden, after_due_date, after_published.")


class tags:
    """Labels for the test."""

    def __init__(self, *args):
        self.tags = args

    def __call__(self, func):
        func.__tags__ = self.tags
        return func


class hide_errors:
    """Shows this message instead of the failure's own."""

    def __init__(self, val="Test failed"):
        self.val = val

    def __call__(self, func):
        func.__hide_errors__ = self.val
        return func


class partial_credit:
    """The test's points, of which it may award part with ``set_score``."""

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, func):
        func.__weight__ = self.weight

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            def set_score(score):
                wrapper.__score__ = score

            kwargs["set_score"] = set_score
            return func(*args, **kwargs)

        return wrapper


class leaderboard:
    """A leaderboard column the test sets with ``set_leaderboard_value``.
    agh keeps no leaderboard: the value is accepted and dropped."""

    def __init__(self, column_name, sort_order="desc"):
        self.column_name = column_name
        self.sort_order = sort_order

    def __call__(self, func):
        func.__leaderboard_column__ = self.column_name
        func.__leaderboard_sort_order__ = self.sort_order

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            kwargs["set_leaderboard_value"] = lambda value: None
            return func(*args, **kwargs)

        return wrapper
