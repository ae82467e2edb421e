# Everything this module is asked for raises the student's own
# ModuleNotFoundError, from the tests' `from solution import ...` on.
def __getattr__(name):
    raise ModuleNotFoundError("No module named 'numpy'", name="numpy")
