// Grades the C course by input and output: the JavaScript twin of
// graders/c-io. The submission's main.c is compiled in the sandbox; each
// case NAME.in of the course files is fed to the program and its output
// compared, inside the grader, with NAME.out, ignoring whitespace. Expected
// outputs never enter the sandbox. A case that brings the sandbox down
// costs only itself.

import * as agh from './agh-grader.js';

const CASES = 'cases';
const BUILD = ['gcc', '-O2', '-std=c11', '-Wall', '-o', '/work/prog', '/work/main.c', '-lm'];

const build = () => new agh.Cmd(BUILD).timeoutMs(30_000).run();
const why = (run) => (run.signal ? `killed by ${run.signal}` : `exit code ${run.exitCode}`);

export const grader = agh.defineGrader({
  describe() {
    return agh.info('c-io-js', '1.0.0', 'agh/python-c:1', {
      wallTimeMs: 3_000,
      memoryBytes: 256 * 1024 * 1024,
      // tmpfs is held in memory: room for a full /work and the programs.
      tmpfsBytes: 128 * 1024 * 1024,
      // Read by the grader only; declared with a grader-only target.
      assets: [agh.asset(CASES, 'course:cases', '/grader/cases')],
    });
  },

  grade() {
    const names = agh.assetFiles(CASES).filter((f) => f.endsWith('.in')).map((f) => f.slice(0, -3)).sort();
    if (names.length === 0) throw new Error('the cases asset holds no NAME.in files');
    const compiled = build();
    if (!compiled.succeeded) {
      const feedback = compiled.stderrText.slice(-2000);
      return {
        tests: names.map((n) => new agh.Test(n).failed(agh.Verdict.COMPILE_ERROR, feedback)),
        output: 'The program does not compile.',
      };
    }
    const tests = [];
    let down = null;
    for (const name of names) {
      const test = new agh.Test(name);
      if (down !== null) {
        tests.push(test.notRun(down));
        continue;
      }
      const given = agh.assetFile(CASES, `${name}.in`);
      const expected = agh.assetText(CASES, `${name}.out`);
      let lost;
      try {
        const run = new agh.Cmd(['/work/prog']).stdin(given).run();
        if (!run.succeeded) tests.push(test.failedWith(run, why(run)));
        else if (agh.compare.ignoringWhitespace(expected, run.stdoutText)) tests.push(test.passed());
        else tests.push(test.failed(agh.Verdict.WRONG, 'wrong output'));
        lost = run.sandboxLost;
      } catch (err) {
        if (!(err instanceof agh.HostError) || err.kind !== 'sandbox-lost') throw err;
        tests.push(test.notRun(err.detail));
        lost = true;
      }
      // A case that brought the sandbox down costs only itself.
      if (lost) {
        down = agh.resetAfterLoss();
        if (down === null) build();
      }
    }
    return tests;
  },
});
