"""The Python SDK's comparisons against the vectors every SDK shares, and
against the longest inputs a student can send them (linear time)."""

import importlib.util
import json
import pathlib
import signal
import unittest

HERE = pathlib.Path(__file__).resolve().parent
SDK = HERE.parent / "sdk-python" / "agh_grader"


def load(name):
    # The modules need no bindings; the package's __init__ does.
    spec = importlib.util.spec_from_file_location(name, SDK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare, lines, feedback = load("compare"), load("lines"), load("feedback")
COMPARATORS = {
    "exact": compare.exact,
    "ignoring_whitespace": compare.ignoring_whitespace,
    "numeric": compare.numeric,
    "lines_same": lines.same,
    "lines_same_unordered": lines.same_unordered,
}
# The default output cap of a command: the most a student can send.
CAP = 1 << 20


class SharedVectors(unittest.TestCase):
    def test_every_vector(self):
        vectors = json.loads((HERE / "comparators.json").read_text())["vectors"]
        self.assertGreaterEqual(len(vectors), 30)
        for v in vectors:
            args = [v["expected"], v["got"]]
            if v["comparator"] == "numeric":
                args.append(v.get("tolerance", 1e-6))
            with self.subTest(v=v):
                self.assertEqual(COMPARATORS[v["comparator"]](*args), v["equal"])

    def test_adversarial_inputs_at_the_cap_end(self):
        # A quadratic helper (a backtracking pattern, a rescan per line)
        # takes hours on these; the alarm ends the test instead of CI.
        signal.alarm(120)
        hostile = [
            " " * CAP + "x",
            "1" * CAP + "x",
            "1." * (CAP // 2),
            "\n" * CAP,
            "a \n" * (CAP // 3),
        ]
        for text in hostile:
            with self.subTest(text=text[:20]):
                for name, fn in COMPARATORS.items():
                    self.assertFalse(fn("y", text), name)
                self.assertTrue(lines.first_difference("y", text).startswith("line "))
        signal.alarm(0)

class Feedback(unittest.TestCase):
    # The same clipping in every SDK and the host: under the cap unchanged,
    # over it cut at a character boundary with a note of what was cut.
    def test_feedback_is_clipped_like_the_host_clips_it(self):
        self.assertEqual(feedback.clip_feedback("short"), "short")
        note = "\n[agh: feedback clipped to 64 KiB; 4464 more bytes not shown]"
        self.assertEqual(feedback.clip_feedback("a" * 70000), "a" * (65536 - len(note)) + note)
        wide = feedback.clip_feedback("\u00e9" * 40000)
        self.assertLessEqual(len(wide.encode()), 65536)
        self.assertTrue(wide.startswith("\u00e9" * 1000) and wide.endswith("14464 more bytes not shown]"))


if __name__ == "__main__":
    unittest.main()
