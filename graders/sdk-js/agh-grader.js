// Write agh course graders in JavaScript.
//
// A grader is a WebAssembly component built with componentize-js. Export
// `grader` made by `defineGrader`, and write `describe` and `grade` in plain
// JavaScript:
//
//   import * as agh from './agh-grader.js';
//
//   export const grader = agh.defineGrader({
//     describe(settings) {
//       return agh.info('hello', '1.0.0', 'agh/python-c:1');
//     },
//     grade(context) {
//       const greeting = context.setting('greeting', 'hello');
//       const run = new agh.Cmd(['python3', '/work/hello.py']).timeoutMs(2000).run();
//       const test = new agh.Test('prints the greeting', 1);
//       if (run.succeeded && agh.compare.ignoringWhitespace(greeting, run.stdoutText)) {
//         return [test.passed()];
//       }
//       return [test.failedWith(run, `expected ${greeting}`)];
//     },
//   });
//
// `agh build` (or `componentize-js app.js --wit wit --world-name
// grader-plugin -o grader.wasm`) makes the component.
//
// How errors reach agh: a `SubmissionError` (throw it yourself), and host
// errors caused by the student (a state they left, a sandbox they brought
// down), make the submission ungradable: scored 0 with the message. Anything
// else thrown (an Error, a string, any value) is the grader's failure
// (plugin-error, never charged to the student), reported with its message.
//
// Numbers the contract holds as 64-bit (limits, times, sizes) are BigInt in
// the raw bindings; this SDK takes and gives plain numbers.

import * as sandbox from 'agh:grader/sandbox@0.2.0';
import * as submission from 'agh:grader/submission@0.2.0';
import * as assets from 'agh:grader/assets@0.2.0';
import { log as hostLog } from 'agh:grader/log@0.2.0';

/** The contract version this SDK speaks. */
export const API_VERSION = '0.2.0';

/** Verdicts, as the contract spells them. */
export const Verdict = Object.freeze({
  ACCEPTED: 'accepted',
  WRONG: 'wrong',
  COMPILE_ERROR: 'compile-error',
  RUNTIME_ERROR: 'runtime-error',
  TIME_LIMIT: 'time-limit',
  MEMORY_LIMIT: 'memory-limit',
  OUTPUT_LIMIT: 'output-limit',
  RESOURCE_LIMIT: 'resource-limit',
});

/** Who may see a test's result. */
export const Visibility = Object.freeze({
  VISIBLE: 'visible',
  AFTER_DUE_DATE: 'after-due-date',
  AFTER_PUBLISHED: 'after-published',
  HIDDEN: 'hidden',
});

/** Throw to say the submission cannot be graded because of what the
 * student did: it is scored 0 with this message, and not retried. */
export class SubmissionError extends Error {}

/** An error the host returned: `kind` is one of `refused`, `not-found`,
 * `submission-state`, `sandbox-lost`, `too-large`. */
export class HostError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.kind = kind;
    this.detail = message;
  }

  /** True when the student's doing caused it. */
  get students() {
    return this.kind === 'submission-state' || this.kind === 'sandbox-lost';
  }
}

function host(call, ...args) {
  try {
    return call(...args);
  } catch (err) {
    const payload = err && err.payload;
    if (payload && typeof payload.tag === 'string') {
      throw new HostError(payload.tag, String(payload.val));
    }
    throw err;
  }
}

const big = (n) => BigInt(Math.round(Number(n)));

/** What `describe` returns: the grader's name and version, the image its
 * sandboxes use, their limits, its own budget (fuel: about one WebAssembly
 * instruction each; JavaScript needs many per line) and the course files it
 * may place. */
export function info(name, version, image, options = {}) {
  const o = {
    wallTimeMs: 10_000,
    memoryBytes: 512 * 1024 * 1024,
    processes: 64,
    outputBytes: 1024 * 1024,
    fileSizeBytes: 64 * 1024 * 1024,
    tmpfsBytes: 256 * 1024 * 1024,
    fuel: 100_000_000_000,
    graderWallTimeMs: 300_000,
    assets: [],
    ...options,
  };
  return {
    name,
    version,
    apiVersion: API_VERSION,
    image,
    limits: {
      wallTimeMs: big(o.wallTimeMs),
      memoryBytes: big(o.memoryBytes),
      processes: Number(o.processes),
      outputBytes: big(o.outputBytes),
      fileSizeBytes: big(o.fileSizeBytes),
      tmpfsBytes: big(o.tmpfsBytes),
    },
    budget: { fuel: big(o.fuel), wallTimeMs: big(o.graderWallTimeMs) },
    assets: o.assets,
  };
}

/** A course file the grader may place: `source` is `SOURCE:PATH` as the
 * operator grants it; `target` is below `/assets` or `/grader`. */
export function asset(name, source, target) {
  return { name, source, target };
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const bytes = (data) => (typeof data === 'string' ? encoder.encode(data) : new Uint8Array(data));

/** What happened to a command. */
export class Result {
  constructor(raw) {
    this.raw = raw;
    this.exitCode = raw.exitCode === undefined ? undefined : Number(raw.exitCode);
    this.signal = raw.signal;
    this.stdout = raw.stdout;
    this.stderr = raw.stderr;
    this.timedOut = raw.timedOut;
    this.outOfMemory = raw.outOfMemory;
    this.sandboxLost = raw.sandboxLost;
    this.limit = raw.limit;
    this.verdict = raw.verdict;
    this.wallTimeMs = Number(raw.wallTimeMs);
    this.cpuTimeMs = Number(raw.cpuTimeMs);
    this.peakMemoryBytes = Number(raw.peakMemoryBytes);
  }

  /** Stdout as text. */
  get stdoutText() {
    return decoder.decode(this.stdout);
  }

  /** Stderr as text. */
  get stderrText() {
    return decoder.decode(this.stderr);
  }

  /** True when the command exited 0 within every limit. */
  get succeeded() {
    return this.verdict === undefined && this.exitCode === 0;
  }
}

/** A command to run in the sandbox, built step by step. */
export class Cmd {
  constructor(argv) {
    this.command = {
      argv: [...argv],
      stdin: new Uint8Array(),
      cwd: undefined,
      env: [],
      user: 'student',
      wallTimeMs: undefined,
      outputBytes: undefined,
    };
  }

  /** Appends arguments. */
  args(...more) {
    this.command.argv.push(...more);
    return this;
  }

  /** Feeds `data` (a string or bytes) to stdin. */
  stdin(data) {
    this.command.stdin = bytes(data);
    return this;
  }

  /** Runs in `folder` instead of the user's own. */
  cwd(folder) {
    this.command.cwd = folder;
    return this;
  }

  /** Adds an environment variable. */
  env(name, value) {
    this.command.env.push([name, value]);
    return this;
  }

  /** Runs as the grader user, in `/grader`, never among the student's files. */
  asGrader() {
    this.command.user = 'grader';
    return this;
  }

  /** The deadline: shorter than the sandbox's, or longer up to the ceiling. */
  timeoutMs(ms) {
    this.command.wallTimeMs = big(ms);
    return this;
  }

  /** Keeps at most `cap` bytes of each output stream. */
  outputBytes(cap) {
    this.command.outputBytes = big(cap);
    return this;
  }

  /** Runs it; a student's failure is a Result, not an exception. */
  run() {
    return new Result(host(sandbox.run, this.command));
  }

  /** Runs this command as a judge beside `student`; returns [judge, student]. */
  converse(student) {
    const both = host(sandbox.converse, this.command, student.command);
    return [new Result(both.judge), new Result(both.student)];
  }
}

/** Writes a file into the sandbox. */
export function writeFile(path, contents, readOnly = false) {
  host(sandbox.writeFile, path, bytes(contents), readOnly);
}

/** Reads up to `maxBytes` of a regular file in the sandbox. */
export function readFile(path, maxBytes = 1024 * 1024) {
  return host(sandbox.readFile, path, big(maxBytes));
}

/** Places a declared asset at its declared target. */
export function placeAsset(name) {
  host(sandbox.placeAsset, name);
}

/** A fresh sandbox with the pristine submission; the named assets placed again. */
export function resetSandbox(...names) {
  host(sandbox.reset, names);
}

/**
 * After a test that brought the sandbox down: a fresh sandbox and null; or,
 * once the submission's programs have brought it down more often than the
 * host resets it, why, and the grader fails the tests it has not run with
 * `test.notRun(why)`. Neither is the grader's failure.
 */
export function resetAfterLoss(...names) {
  try {
    resetSandbox(...names);
    return null;
  } catch (err) {
    if (err instanceof HostError && err.kind === 'sandbox-lost') return err.detail;
    throw err;
  }
}

/** The submission's files, from the host's pristine copy. */
export function submissionFiles() {
  return host(submission.listFiles);
}

/** One submission file's bytes. */
export function submissionFile(path) {
  return host(submission.readFile, path);
}

/** The files of a declared asset. */
export function assetFiles(name) {
  return host(assets.listFiles, name);
}

/** One file of a declared asset, read by the grader. */
export function assetFile(name, path) {
  return host(assets.read, name, path);
}

/** One file of a declared asset, as text. */
export function assetText(name, path) {
  return decoder.decode(assetFile(name, path));
}

/** Logs for the operator. */
export function logInfo(message) {
  hostLog('info', String(message));
}

/** Logs a warning for the operator. */
export function logWarn(message) {
  hostLog('warn', String(message));
}

/** Most bytes (UTF-8) of one test's feedback the host keeps. */
export const MAX_FEEDBACK_BYTES = 64 * 1024;

/**
 * `feedback` held to `MAX_FEEDBACK_BYTES` at a character boundary, with a
 * last line saying how much was cut, as the host clips it. Feedback is often
 * what the student printed: its size is the student's choice.
 */
export function clipFeedback(feedback) {
  const bytes = new TextEncoder().encode(feedback);
  if (bytes.length <= MAX_FEEDBACK_BYTES) return feedback;
  const over = bytes.length - MAX_FEEDBACK_BYTES;
  const note = `\n[agh: feedback clipped to ${MAX_FEEDBACK_BYTES / 1024} KiB; ${over} more bytes not shown]`;
  let keep = MAX_FEEDBACK_BYTES - note.length;
  // Back to the start of a character: UTF-8 continuation bytes are 10xxxxxx.
  while (keep > 0 && (bytes[keep] & 0xc0) === 0x80) keep -= 1;
  return new TextDecoder().decode(bytes.subarray(0, keep)) + note;
}

/** One test's result, built from its name and points. */
export class Test {
  constructor(name, points = 1) {
    this.name = name;
    this.points = points;
    this.shown = Visibility.VISIBLE;
  }

  /** Sets who may see it. */
  visibility(visibility) {
    this.shown = visibility;
    return this;
  }

  /** Never shown to the student. */
  hidden() {
    return this.visibility(Visibility.HIDDEN);
  }

  /** `score` points with the verdict given; `output` past
   * `MAX_FEEDBACK_BYTES` is clipped (`clipFeedback`). */
  scored(score, verdict, output = '') {
    return {
      name: this.name,
      score: Number(score),
      maxScore: Number(this.points),
      verdict,
      output: clipFeedback(String(output)),
      visibility: this.shown,
    };
  }

  /** Full marks. */
  passed(output = '') {
    return this.scored(this.points, Verdict.ACCEPTED, output);
  }

  /** No marks, with the verdict given. */
  failed(verdict = Verdict.WRONG, output = '') {
    return this.scored(0, verdict, output);
  }

  /** No marks, wrong: the program printed `got` where `expected` was due.
   * The feedback is `lines.firstDifference` with this test's visibility:
   * the expected line is named only to a visible test. */
  wrongOutput(expected, got) {
    return this.failed(Verdict.WRONG, `wrong output: ${lines.firstDifference(expected, got, this.shown)}`);
  }

  /** No marks: not run, since the submission kept bringing the sandbox down. */
  notRun(why) {
    return this.failed(Verdict.RESOURCE_LIMIT, `not run: ${why}`);
  }

  /** No marks; the verdict comes from the run, or is wrong for a clean run. */
  failedWith(run, output = '') {
    return this.failed(run.verdict ?? Verdict.WRONG, output);
  }
}

// The comparisons follow graders/spec/comparators.md, which every agh SDK
// shares; each runs in time linear in its input (no regular expression that
// backtracks: a student's output cannot make a comparison slow).
const SPACE = ' \t\n\f\r';
const isSpace = (ch) => SPACE.includes(ch);

/** The runs of characters that are not whitespace. */
function tokens(text) {
  return text.split(/[ \t\n\f\r]+/).filter(Boolean);
}

// Unambiguous, so it never backtracks.
const NUMBER = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** The value of a token that is a number by the specification, else null. */
function number(token) {
  if (!NUMBER.test(token)) return null;
  const value = Number(token);
  return Number.isFinite(value) ? value : null;
}

/** Comparing a program's output with what was expected. */
export const compare = Object.freeze({
  exact: (expected, got) => expected === got,
  ignoringWhitespace(expected, got) {
    const a = tokens(expected);
    const b = tokens(got);
    return a.length === b.length && a.every((t, i) => t === b[i]);
  },
  numeric(expected, got, tolerance = 1e-6) {
    const a = tokens(expected);
    const b = tokens(got);
    if (a.length !== b.length) return false;
    return a.every((w, i) => {
      const h = b[i];
      const x = number(w);
      const y = number(h);
      if (x !== null && y !== null) {
        const d = Math.abs(x - y);
        return d <= tolerance || d <= tolerance * Math.abs(x);
      }
      return w === h;
    });
  },
});

function trimEnd(line) {
  let end = line.length;
  while (end > 0 && isSpace(line[end - 1])) end--;
  return line.slice(0, end);
}

function trimmedLines(text) {
  const lines = text.split('\n').map(trimEnd);
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** A line for feedback: its first 80 code points, quoted, with what could
 * end the quotation or drive a terminal escaped. */
function quoted(line) {
  const points = Array.from(line);
  let out = '"';
  for (const ch of points.slice(0, 80)) {
    const code = ch.codePointAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return `${out}${points.length > 80 ? '…' : ''}"`;
}

/** Line-based comparisons and feedback. */
export const lines = Object.freeze({
  same: (expected, got) => {
    const a = trimmedLines(expected);
    const b = trimmedLines(got);
    return a.length === b.length && a.every((l, i) => l === b[i]);
  },
  sameUnordered: (expected, got) => {
    const a = trimmedLines(expected).sort();
    const b = trimmedLines(got).sort();
    return a.length === b.length && a.every((l, i) => l === b[i]);
  },
  /** Where `got` first departs from `expected`, for a test's feedback, by
   * the one rule every SDK shares (graders/spec/comparators.md): the
   * expected line is named only when `visibility` is `Visibility.VISIBLE`;
   * otherwise (left out included) the feedback says where and what the
   * student printed, never what was expected. `Test.wrongOutput` is this
   * with the test's own visibility. */
  firstDifference(expected, got, visibility) {
    const shown = visibility === Visibility.VISIBLE;
    const a = trimmedLines(expected);
    const b = trimmedLines(got);
    let n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (a[i] !== b[i]) {
        n = i;
        break;
      }
    }
    const line = n + 1;
    if (n < a.length && n < b.length) {
      return shown
        ? `line ${line}: expected ${quoted(a[n])}, got ${quoted(b[n])}`
        : `line ${line}: got ${quoted(b[n])}, which is not what was expected`;
    }
    if (n < a.length) {
      return shown
        ? `line ${line}: expected ${quoted(a[n])}, got the end of the output`
        : `line ${line}: got the end of the output, and more was expected`;
    }
    if (n < b.length) {
      return shown
        ? `line ${line}: expected the end of the output, got ${quoted(b[n])}`
        : `line ${line}: got ${quoted(b[n])}, past the end of what was expected`;
    }
    return 'the output differs only in spacing';
  },
});

/** What `grade` is told about the submission. */
export class Context {
  constructor(raw) {
    this.submission = raw.submission;
    this.settings = Object.fromEntries(raw.settings);
  }

  /** The course setting `name`, or `fallback`. */
  setting(name, fallback = undefined) {
    return Object.prototype.hasOwnProperty.call(this.settings, name) ? this.settings[name] : fallback;
  }
}

function describeThrown(err) {
  if (err instanceof Error) {
    const where = (err.stack || '').split('\n').find((l) => l.includes('@')) || '';
    return `${err.name}: ${err.message}${where ? ` (at ${where.trim()})` : ''}`;
  }
  try {
    return typeof err === 'string' ? err : JSON.stringify(err);
  } catch {
    return String(err);
  }
}

/** Makes the exported `grader` from `describe(settings)` (settings an
 * object) and `grade(context)` (a Context; returns test results, or
 * `{tests, output}`). Whatever is thrown reaches agh as the right failure. */
export function defineGrader({ describe, grade }) {
  return {
    describe(settings) {
      return describe(Object.fromEntries(settings));
    },
    grade(raw) {
      let out;
      try {
        out = grade(new Context(raw));
      } catch (err) {
        if (err instanceof SubmissionError || (err instanceof HostError && err.students)) {
          throw { tag: 'submission', val: err.message };
        }
        throw { tag: 'grader', val: describeThrown(err) };
      }
      if (Array.isArray(out)) return { tests: out, output: '' };
      return { tests: out.tests, output: out.output ?? '' };
    },
  };
}
