// Grades the Python course with hidden unittest files: the JavaScript twin
// of graders/python-unittest, with the same judge harness (harness.js holds
// its Python files, made from graders/python-unittest/harness by
// scripts/gen-js-harness).
//
// The tests run in one conversation, started once for the batch: the judge
// runs as the grader user and runs each test with unittest; the student's
// server runs as the student and forks a fresh process for each test, which
// imports the student's modules, reached only through plain data. Each
// verdict is one line on the judge's own stderr, which the student's code
// cannot reach. When the conversation ends early, the test that was running
// is charged if it was the cause, and the rest run in a new conversation.
// A test method may carry its weight: `def test_x(self):  # points: 2`.

import * as agh from './agh-grader.js';
import { HARNESS } from './harness.js';

const JUDGE = '/assets/agh-harness/judge.py';
const STUDENT = '/assets/agh-harness/student.py';
const TESTS_TARGET = '/grader/tests';
const VERDICT_PREFIX = 'agh-judge ';
// What starts the line before each test's output on the student's server's stderr.
const TEST_HEADER = 'agh: --- ';
// A test's deadline, enforced by the student's server.
const TEST_TIMEOUT_MS = 3_000;
// The time a batch is given on top of its tests' deadlines.
const BATCH_SLACK_MS = 5_000;
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

/** The verdicts the judge gave, in order. */
function judgeVerdicts(judge) {
  const verdicts = [];
  for (const line of judge.stderrText.split('\n')) {
    if (!line.startsWith(VERDICT_PREFIX)) continue;
    try {
      verdicts.push(JSON.parse(line.slice(VERDICT_PREFIX.length)));
    } catch {
      // not a verdict line
    }
  }
  return verdicts;
}

const limitOf = (run) => (LIMITS.includes(run.verdict) ? run.verdict : undefined);

function feedback(message, output) {
  const shown = tail(output || '');
  if (!shown) return message;
  return message ? `${message}\n\nYour program's output:\n${shown}` : `Your program's output:\n${shown}`;
}

// gradescope_utils' visibility names, as the judge reports its marks.
const VISIBILITY = {
  visible: agh.Visibility.VISIBLE,
  hidden: agh.Visibility.HIDDEN,
  after_due_date: agh.Visibility.AFTER_DUE_DATE,
  after_published: agh.Visibility.AFTER_PUBLISHED,
};

/** What a failed test says, by the SDKs' one rule on feedback: a test's
 * own failure message (`6 != 42`, its expected values) reaches a visible
 * test only; what the student's code raised, a limit it met and staff's
 * `@hide_errors` words are shown whatever the visibility. */
function messageFor(v, visibility) {
  const testsOwn = !(v.student_raised || v.limit || v.staff_message);
  if (testsOwn && v.message && visibility !== agh.Visibility.VISIBLE) {
    return 'the test failed (its own message is shown only for tests visible at once)';
  }
  return v.message || '';
}

/** A test's result from the judge's verdict, with the marks the judge
 * read off the test (gradescope_utils' decorators) over the listing's:
 * Gradescope's scoring, where a test that set its own score keeps it,
 * passed or not, and passes only with all its points. */
function judged(testCase, v) {
  if (v.judge_failed) throw new Error(`the judge failed on ${testCase.id}: ${v.message}`);
  const points = Number.isFinite(v.weight) && v.weight >= 0 ? v.weight : testCase.points;
  const visibility = Object.hasOwn(VISIBILITY, v.visibility) ? VISIBILITY[v.visibility] : agh.Visibility.VISIBLE;
  const test = new agh.Test(testCase.id, points).visibility(visibility);
  const passed = v.outcome === 'passed';
  let failure = v.student_raised ? agh.Verdict.RUNTIME_ERROR : agh.Verdict.WRONG;
  if (v.limit === 'time') failure = agh.Verdict.TIME_LIMIT;
  if (v.limit === 'output') failure = agh.Verdict.OUTPUT_LIMIT;
  const output = feedback(messageFor(v, visibility), v.output);
  if (Number.isFinite(v.score)) {
    const score = Math.min(Math.max(v.score, 0), points);
    return test.scored(score, passed && score >= points ? agh.Verdict.ACCEPTED : failure, output);
  }
  return passed ? test.passed() : test.failed(failure, output);
}

/** What the last test's process printed, from the student's server's
 * stderr, where each test's output follows a line naming it. */
function lastTestOutput(stderr) {
  const at = stderr.lastIndexOf(TEST_HEADER);
  if (at < 0) return stderr;
  const newline = stderr.indexOf('\n', at);
  return newline < 0 ? '' : stderr.slice(newline + 1);
}

/** The test running when a conversation ended without its verdict, charged
 * with what ended it; an error when nothing the student did explains it. */
function cutShort(testCase, judge, student) {
  const test = new agh.Test(testCase.id, testCase.points);
  const limit = limitOf(student) ?? limitOf(judge);
  const output = lastTestOutput(student.stderrText);
  if (limit) return test.failed(limit, feedback('', output));
  if (student.sandboxLost || judge.sandboxLost) {
    return test.failed(agh.Verdict.RESOURCE_LIMIT, feedback('the sandbox was lost', output));
  }
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
    while (tests.length < cases.length) {
      const batch = cases.slice(tests.length);
      if (down !== null) {
        for (const c of batch) tests.push(new agh.Test(c.id, c.points).notRun(down));
        break;
      }
      const timeout = BATCH_SLACK_MS + (TEST_TIMEOUT_MS + 2_000) * batch.length;
      const judge = new agh.Cmd(['python3', '-I', '-B', JUDGE, String(TEST_TIMEOUT_MS), ...batch.map((c) => c.id), '--', ...modules])
        .asGrader()
        .timeoutMs(timeout);
      const student = new agh.Cmd(['python3', '-I', '-B', STUDENT]).timeoutMs(timeout);
      let lost = false;
      try {
        const [j, s] = judge.converse(student);
        lost = j.sandboxLost || s.sandboxLost;
        const verdicts = judgeVerdicts(j);
        for (const [i, testCase] of batch.entries()) {
          const v = verdicts[i];
          if (v && v.test === testCase.id) {
            tests.push(judged(testCase, v));
            continue;
          }
          // Running when the conversation ended: charged if it ended the
          // conversation or ran alone in it; otherwise it runs again.
          if (lost || i === 0) tests.push(cutShort(testCase, j, s));
          break;
        }
      } catch (err) {
        if (!(err instanceof agh.HostError) || err.kind !== 'sandbox-lost') throw err;
        const c = batch[0];
        tests.push(new agh.Test(c.id, c.points).failed(agh.Verdict.RESOURCE_LIMIT, `not run: ${err.detail}`));
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
