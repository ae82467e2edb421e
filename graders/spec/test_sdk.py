"""The Python SDK spells what every SDK shares as graders/spec/sdk.json and
the contract name it. The SDK is imported natively with the contract's real
bindings, made by componentize-py (as ``agh build`` makes them); their host
functions exist only inside a component, so the tests stand in for the one
host call they make. A missing componentize-py fails the run: it is never
skipped."""

import atexit
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "sdk.json").read_text())
WIT = HERE.parent.parent / "wit" / SPEC["contract"]


def componentize_py():
    tool = os.environ.get("AGH_COMPONENTIZE_PY") or shutil.which("componentize-py")
    if not tool:
        raise SystemExit("test_sdk: componentize-py is not installed; scripts/setup installs it")
    return tool


def load_sdk():
    bindings = tempfile.mkdtemp(prefix="agh-sdk-bindings-")
    atexit.register(shutil.rmtree, bindings, True)
    subprocess.run(
        [componentize_py(), "-d", str(WIT), "-w", "grader-plugin", "bindings", bindings],
        check=True,
    )
    sys.path[:0] = [bindings, str(HERE.parent / "sdk-python")]
    import agh_grader
    from componentize_py_types import Err
    from wit_world.imports import types

    return agh_grader, Err, types


agh, Err, types = load_sdk()


def contract_cases(kind, name):
    """The cases of a WIT enum or variant, as the contract spells them."""
    text = (WIT / "grader.wit").read_text()
    body = re.search(r"%s %s \{([^}]*)\}" % (kind, name), text).group(1)
    lines = (line.strip() for line in body.split("\n"))
    return [re.split(r"[(,]", line)[0] for line in lines if line and not line.startswith("//")]


def spelled(member):
    """A bindings enum member as the contract spells it: AFTER_DUE_DATE is after-due-date."""
    return member.name.lower().replace("_", "-")


class SharedNames(unittest.TestCase):
    def test_verdicts_and_visibilities_are_the_contracts_names(self):
        for enum, name in ((agh.Verdict, "verdict"), (agh.Visibility, "visibility")):
            wanted = contract_cases("enum", name)
            self.assertGreaterEqual(len(wanted), 4, wanted)
            self.assertEqual([spelled(m) for m in enum], wanted, name)

    def test_a_test_is_built_and_finished_by_the_shared_names(self):
        built = agh.Test("adds", 2)
        for method in SPEC["test"]["methods"]:
            self.assertTrue(callable(getattr(built, method, None)), "Test." + method)
        hidden = agh.Test("adds", 2).hidden().passed()
        self.assertEqual(
            (hidden.name, hidden.score, hidden.max_score, hidden.verdict, hidden.output, hidden.visibility),
            ("adds", 2.0, 2.0, agh.Verdict.ACCEPTED, "", agh.Visibility.HIDDEN),
        )
        late = agh.Test("adds", 2).visibility(agh.Visibility.AFTER_DUE_DATE).wrong_output("3\n", "4\n")
        self.assertEqual(late.output, 'wrong output: line 1: got "4", which is not what was expected')
        self.assertEqual((late.verdict, late.score), (agh.Verdict.WRONG, 0.0))
        # The earlier spelling of a visibility still builds the same test.
        self.assertEqual(
            agh.Test("adds", 2, agh.Visibility.HIDDEN).passed(),
            agh.Test("adds", 2).visibility(agh.Visibility.HIDDEN).passed(),
        )
        for module, names in ((agh.lines, SPEC["lines"]), (agh.compare, SPEC["compare"])):
            for name in names:
                self.assertTrue(callable(getattr(module, name, None)), "%s.%s" % (module.__name__, name))

    def test_a_host_error_has_the_shared_fields_for_every_kind_the_contract_names(self):
        kinds = contract_cases("variant", "error")
        self.assertEqual(len(kinds), 5, kinds)
        real = agh._sandbox.read_file
        try:
            for kind in kinds:
                case = getattr(types, "Error_" + kind.title().replace("-", ""))

                def failing(*_args, case=case):
                    raise Err(case("the host says why"))

                agh._sandbox.read_file = failing
                with self.assertRaises(agh.HostError) as raised:
                    agh.read_file("/work/x")
                err = raised.exception
                for name in SPEC["host_error"]["fields"]:
                    self.assertTrue(hasattr(err, name), "HostError." + name)
                self.assertEqual((err.kind, err.detail), (kind, "the host says why"))
                self.assertEqual(err.students, kind in SPEC["host_error"]["students"], kind)
        finally:
            agh._sandbox.read_file = real

    def test_the_shared_feedback_on_a_wrong_output(self):
        vectors = json.loads((HERE / "comparators.json").read_text())["differences"]
        self.assertGreaterEqual(len(vectors), 12)
        by_name = {spelled(m): m for m in agh.Visibility}
        for v in vectors:
            with self.subTest(v=v):
                shown = by_name[v["visibility"]]
                self.assertEqual(agh.lines.first_difference(v["expected"], v["got"], shown), v["feedback"])
                result = agh.Test("t").visibility(shown).wrong_output(v["expected"], v["got"])
                self.assertEqual(result.output, "wrong output: " + v["feedback"])
        # Left out, the visibility hides: forgetting it never shows the answer.
        self.assertEqual(
            agh.lines.first_difference("secret\n", "guess\n"),
            'line 1: got "guess", which is not what was expected',
        )


if __name__ == "__main__":
    unittest.main()
