// Grades the Python course with hidden unittest files: the JavaScript twin
// of graders/python-unittest, with the same judge harness (harness.js holds
// its Python files, made from graders/python-unittest/harness by
// scripts/gen-js-harness).
//
// Each test method is one conversation: the judge runs as the grader user
// and runs that one test with unittest; the student's modules live in a
// second process run as the student, reached only through plain data. The
// verdict is one line on the judge's own stderr, which the student's code
// cannot reach. A test method may carry its weight: `def test_x(self):  # points: 2`.

import * as agh from './agh-grader.js';
import { HARNESS } from './harness.js';

const JUDGE = '/assets/agh-harness/judge.py';
const STUDENT = '/assets/agh-harness/student.py';
const TESTS_TARGET = '/grader/tests';
const VERDICT_PREFIX = 'agh-judge ';
const FEEDBACK_CHARS = 2000;
const LIMITS = [agh.Verdict.TIME_LIMIT, agh.Verdict.MEMORY_LIMIT, agh.Verdict.OUTPUT_LIMIT, agh.Verdict.RESOURCE_LIMIT];

/** `class X(...TestCase...)` and its `def test_*` methods, with points. */
function discover(module, source) {
  const cases = [];
  let klass = null;
  for (const line of source.split('\n')) {
    if (line.startsWith('class ')) {
      const rest = line.slice(6);
      klass = rest.includes('TestCase') ? rest.split(/[(:]/)[0].trim() : null;
    } else if (klass && line.trimStart().startsWith('def test')) {
      const name = `test${line.trimStart().slice(8).split('(')[0]}`;
      const points = Number((line.split('# points:')[1] || '').trim());
      cases.push({ id: `${module}.${klass}.${name}`, points: Number.isFinite(points) && points > 0 ? points : 1 });
    }
  }
  return cases;
}

/** Top-level modules a test file imports. */
function importedModules(source) {
  const names = new Set();
  for (const raw of source.split('\n')) {
    const line = raw.trimStart();
    let listed;
    if (line.startsWith('import ')) listed = line.slice(7).split('#')[0];
    else if (line.startsWith('from ')) listed = line.slice(5).split(/\s+/)[0] || '';
    else continue;
    for (const item of listed.split(',')) {
      const top = (item.trim().split(/\s+/)[0] || '').split('.')[0];
      if (/^[A-Za-z0-9_]+$/.test(top)) names.add(top);
    }
  }
  return names;
}

/** The top-level module a submission file provides. */
function providedModule(path) {
  if (!path.endsWith('.py')) return null;
  const top = path.split('/')[0];
  const name = path.includes('/') ? top : top.slice(0, -3);
  return name || null;
}

const tail = (text) => text.slice(-FEEDBACK_CHARS).trim();

function judgeVerdict(judge) {
  const line = judge.stderrText.split('\n').reverse().find((l) => l.startsWith(VERDICT_PREFIX));
  if (!line) return null;
  try {
    return JSON.parse(line.slice(VERDICT_PREFIX.length));
  } catch {
    return null;
  }
}

const limitOf = (run) => (LIMITS.includes(run.verdict) ? run.verdict : undefined);

function feedback(message, student) {
  const stderr = tail(student.stderrText);
  if (!stderr) return message;
  return message ? `${message}\n\nYour program's stderr:\n${stderr}` : `Your program's stderr:\n${stderr}`;
}

function judged(testCase, judge, student) {
  const test = new agh.Test(testCase.id, testCase.points);
  const limit = limitOf(student) ?? limitOf(judge);
  const v = judgeVerdict(judge);
  if (v && v.judge_failed) throw new Error(`the judge failed on ${testCase.id}: ${v.message}`);
  if (v && v.outcome === 'passed' && judge.exitCode === 0) return test.passed();
  if (v) {
    const verdict = limit ?? (v.student_raised ? agh.Verdict.RUNTIME_ERROR : agh.Verdict.WRONG);
    return test.failed(verdict, feedback(v.message || '', student));
  }
  if (limit) return test.failed(limit, feedback('', student));
  throw new Error(`the judge of ${testCase.id} gave no verdict (exit ${judge.exitCode}): ${tail(judge.stderrText)}`);
}

function writeHarness() {
  for (const [path, source] of Object.entries(HARNESS)) agh.writeFile(path, source, true);
}

export const grader = agh.defineGrader({
  describe() {
    return agh.info('python-unittest-js', '1.0.0', 'agh/python-c:1', {
      wallTimeMs: 3_000,
      memoryBytes: 256 * 1024 * 1024,
      // tmpfs is held in memory: room for a full /work and the programs.
      tmpfsBytes: 128 * 1024 * 1024,
      assets: [agh.asset('tests', 'course:tests', TESTS_TARGET)],
    });
  },

  grade() {
    const cases = [];
    const imported = new Set();
    for (const file of agh.assetFiles('tests')) {
      const match = /^test_(.+)\.py$/.exec(file);
      if (!match) continue;
      const source = agh.assetText('tests', file);
      cases.push(...discover(`test_${match[1]}`, source));
      for (const m of importedModules(source)) imported.add(m);
    }
    if (cases.length === 0) throw new Error('the tests asset holds no test_*.py with TestCase methods');
    agh.placeAsset('tests');
    writeHarness();
    const provided = new Set(agh.submissionFiles().map(providedModule).filter(Boolean));
    const modules = [...imported].filter((m) => provided.has(m)).sort();

    // A syntax error is a compile error for every test, not a crash each.
    const check = new agh.Cmd(['python3', '-I', '-B', STUDENT, '--check']).run();
    if (!check.succeeded) {
      const verdict = limitOf(check) ?? agh.Verdict.COMPILE_ERROR;
      const why = tail(check.stderrText);
      return {
        tests: cases.map((c) => new agh.Test(c.id, c.points).failed(verdict, why)),
        output: 'The submission does not compile.',
      };
    }

    const tests = [];
    let down = null;
    for (const testCase of cases) {
      if (down !== null) {
        tests.push(new agh.Test(testCase.id, testCase.points).notRun(down));
        continue;
      }
      const judge = new agh.Cmd(['python3', '-I', '-B', JUDGE, testCase.id, ...modules]).asGrader();
      const student = new agh.Cmd(['python3', '-I', '-B', STUDENT]);
      let lost = false;
      try {
        const [j, s] = judge.converse(student);
        tests.push(judged(testCase, j, s));
        lost = j.sandboxLost || s.sandboxLost;
      } catch (err) {
        if (!(err instanceof agh.HostError) || err.kind !== 'sandbox-lost') throw err;
        tests.push(new agh.Test(testCase.id, testCase.points).failed(agh.Verdict.RESOURCE_LIMIT, `not run: ${err.detail}`));
        lost = true;
      }
      // A test that brought the sandbox down costs only itself.
      if (lost) {
        down = agh.resetAfterLoss('tests');
        if (down === null) writeHarness();
      }
    }
    return tests;
  },
});
