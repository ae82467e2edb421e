// The JavaScript SDK's comparisons against the vectors every SDK shares,
// and against the longest inputs a student can send them (linear time).
// Run with `node --test graders/spec/`.
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { agh } from './sdk.mjs';

const vectors = JSON.parse(readFileSync(new URL('comparators.json', import.meta.url), 'utf8')).vectors;
const comparators = {
  exact: agh.compare.exact,
  ignoring_whitespace: agh.compare.ignoringWhitespace,
  numeric: agh.compare.numeric,
  lines_same: agh.lines.same,
  lines_same_unordered: agh.lines.sameUnordered,
};
const CAP = 1 << 20;

test('every shared vector', () => {
  assert.ok(vectors.length >= 30, `${vectors.length} vectors`);
  for (const v of vectors) {
    const args = [v.expected, v.got];
    if (v.comparator === 'numeric') args.push(v.tolerance ?? 1e-6);
    assert.equal(comparators[v.comparator](...args), v.equal, JSON.stringify(v).slice(0, 120));
  }
});

// The same clipping in every SDK and the host: under the cap unchanged, over
// it cut at a character boundary with a note of what was cut.
test('feedback is clipped like the host clips it', () => {
  assert.equal(agh.clipFeedback('short'), 'short');
  const note = '\n[agh: feedback clipped to 64 KiB; 4464 more bytes not shown]';
  assert.equal(agh.clipFeedback('a'.repeat(70000)), 'a'.repeat(65536 - note.length) + note);
  const wide = agh.clipFeedback('\u00e9'.repeat(40000));
  assert.ok(new TextEncoder().encode(wide).length <= 65536);
  assert.ok(wide.startsWith('\u00e9'.repeat(1000)) && wide.endsWith('14464 more bytes not shown]'));
  assert.equal(new agh.Test('t').failed(agh.Verdict.WRONG, 'b'.repeat(70000)).output.length, 65536);
});

// A quadratic helper (the backtracking trim this replaced) takes hours on
// these; the timeout ends the test instead of CI.
test('adversarial inputs at the cap end', { timeout: 120000 }, () => {
  const hostile = [' '.repeat(CAP) + 'x', '1'.repeat(CAP) + 'x', '1.'.repeat(CAP / 2), '\n'.repeat(CAP), 'a \n'.repeat(CAP / 3)];
  for (const text of hostile) {
    for (const [name, fn] of Object.entries(comparators)) assert.equal(fn('y', text), false, name);
    assert.match(agh.lines.firstDifference('y', text), /^line /);
  }
});
