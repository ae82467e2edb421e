// The JavaScript SDK spells what every SDK shares as graders/spec/sdk.json
// and the contract name it: run with `node --test graders/spec/`.
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agh, hostError } from './sdk.mjs';

const spec = JSON.parse(readFileSync(new URL('sdk.json', import.meta.url), 'utf8'));
const wit = readFileSync(new URL(`../../wit/${spec.contract}/grader.wit`, import.meta.url), 'utf8');
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** The cases of a WIT enum or variant, as the contract spells them. */
function cases(kind, name) {
  const body = wit.match(new RegExp(`${kind} ${name} \\{([^}]*)\\}`))[1];
  return body
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('//'))
    .map((line) => line.replace(/[(,].*$/, ''));
}

test('verdicts and visibilities are the contract\'s names', () => {
  for (const [kind, name, values] of [
    ['enum', 'verdict', agh.Verdict],
    ['enum', 'visibility', agh.Visibility],
  ]) {
    const wanted = cases(kind, name);
    assert.ok(wanted.length >= 4, `${name}: ${wanted}`);
    assert.deepEqual(Object.values(values).sort(), [...wanted].sort(), name);
    for (const value of wanted) assert.equal(values[value.toUpperCase().replaceAll('-', '_')], value);
  }
});

test('a test is built and finished by the shared names', () => {
  const built = new agh.Test('adds', 2);
  for (const method of spec.test.methods) {
    assert.equal(typeof built[camel(method)], 'function', `Test.${camel(method)}`);
  }
  const hidden = new agh.Test('adds', 2).hidden().passed();
  assert.deepEqual(hidden, {
    name: 'adds', score: 2, maxScore: 2, verdict: agh.Verdict.ACCEPTED, output: '', visibility: agh.Visibility.HIDDEN,
  });
  const late = new agh.Test('adds', 2).visibility(agh.Visibility.AFTER_DUE_DATE).wrongOutput('3\n', '4\n');
  assert.equal(late.output, 'wrong output: line 1: got "4", which is not what was expected');
  assert.equal(late.verdict, agh.Verdict.WRONG);
  assert.equal(late.score, 0);
  for (const name of spec.lines) assert.equal(typeof agh.lines[camel(name)], 'function', `lines.${camel(name)}`);
  for (const name of spec.compare) assert.equal(typeof agh.compare[camel(name)], 'function', `compare.${camel(name)}`);
});

test('a host error has the shared fields, for every kind the contract names', () => {
  const kinds = cases('variant', 'error');
  assert.equal(kinds.length, 5, String(kinds));
  for (const kind of kinds) {
    hostError(kind, 'the host says why');
    let thrown;
    try {
      agh.readFile('/work/x');
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown instanceof agh.HostError, `${kind}: ${thrown}`);
    for (const field of spec.host_error.fields) assert.ok(field in thrown, `HostError.${field}`);
    assert.equal(thrown.kind, kind);
    assert.equal(thrown.detail, 'the host says why');
    assert.equal(thrown.students, spec.host_error.students.includes(kind), kind);
  }
});

test('the shared feedback on a wrong output', () => {
  const vectors = JSON.parse(readFileSync(new URL('comparators.json', import.meta.url), 'utf8')).differences;
  assert.ok(vectors.length >= 12, `${vectors.length} vectors`);
  for (const v of vectors) {
    assert.equal(agh.lines.firstDifference(v.expected, v.got, v.visibility), v.feedback, JSON.stringify(v).slice(0, 120));
    const result = new agh.Test('t').visibility(v.visibility).wrongOutput(v.expected, v.got);
    assert.equal(result.output, `wrong output: ${v.feedback}`);
  }
  // Left out, the visibility hides: forgetting it never shows the answer.
  assert.equal(agh.lines.firstDifference('secret\n', 'guess\n'), 'line 1: got "guess", which is not what was expected');
});
