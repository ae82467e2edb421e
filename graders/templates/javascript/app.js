// The grader of an exercise: the student's solution.py reads numbers and
// prints their sum. Each case NAME.in of the course files is fed to it, and
// its output compared with NAME.out here, in the grader: expected outputs
// never enter the sandbox.

import * as agh from './agh-grader.js';

export const grader = agh.defineGrader({
  describe() {
    return agh.info('exercise', '0.1.0', 'agh/python-c:1', {
      wallTimeMs: 2_000,
      // Read by the grader only; never placed in the sandbox.
      assets: [agh.asset('cases', 'course:cases', '/grader/cases')],
    });
  },

  grade() {
    const names = agh.assetFiles('cases').filter((f) => f.endsWith('.in')).map((f) => f.slice(0, -3)).sort();
    return names.map((name) => {
      const given = agh.assetFile('cases', `${name}.in`);
      const expected = agh.assetText('cases', `${name}.out`);
      const run = new agh.Cmd(['python3', '/work/solution.py']).stdin(given).run();
      const test = new agh.Test(name);
      if (!run.succeeded) return test.failedWith(run, run.stderrText);
      if (agh.compare.ignoringWhitespace(expected, run.stdoutText)) return test.passed();
      return test.wrongOutput(expected, run.stdoutText);
    });
  },
});
