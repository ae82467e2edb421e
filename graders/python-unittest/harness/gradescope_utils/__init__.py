"""agh's stand-in for gradescope_utils: the decorators and helpers a
Gradescope unittest suite imports, honoured by agh's judge (judge.py), which
runs each test out of the student's reach. Only what tests import is here:
there is no JSONTestRunner, since agh's judge is the runner."""
