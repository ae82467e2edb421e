"""Runs one unittest test by id and reports it with the grader's nonce.

Placed read-only under /assets by the python-unittest grader. The nonce is
read from stdin before any student code is imported; the verdict line
carries it, so printing "OK", a score or fake JSON, or exiting early with
status 0, proves nothing.
"""
import os
import sys
import unittest

nonce = sys.stdin.readline().strip()
sys.stdin = open(os.devnull)
test_id = sys.argv[1]
out = sys.stdout
sys.path[:0] = ["/work", "/assets/tests"]
os.chdir("/work")
suite = unittest.defaultTestLoader.loadTestsFromName(test_id)
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(suite)
passed = result.wasSuccessful() and result.testsRun == 1 and not result.skipped
out.write("\n%s %s\n" % (nonce, "PASS" if passed else "FAIL"))
out.flush()
