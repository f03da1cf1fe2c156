// ONNX's own backend node tests (../shared/conformance/onnx-node), one vitest test per test folder:
// each model.onnx goes through the ONNX importer and the compiler as a user's model does, and its
// outputs are judged with ONNX's tolerances (rtol 1e-3, atol 1e-7). Tests that need an op, dtype or
// attribute the importer deliberately refuses are listed as skipped with the reason in the title.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type PreparedTest, compareOutputs, listConformanceTests, prepareTest, runPrepared } from '../src/conformance/runner.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import type { OnnxTensor } from '../src/import/onnx-proto.ts';
import { SHARED_DIR, fixturesPresent, sharedMissingMessage } from './helpers.ts';

afterAll(closeRuntime);

const DIR = join(SHARED_DIR, 'conformance', 'onnx-node');
const available = fixturesPresent([join(DIR, 'index.tsv')]);
// Reading every model and data file takes well under a second; it decides which tests are skipped.
const prepared: PreparedTest[] = available ? listConformanceTests(DIR).map((name) => prepareTest(DIR, name)) : [];

describe('ONNX backend conformance (../shared/conformance/onnx-node)', () => {
  if (!available) {
    it.skip(sharedMissingMessage('the ONNX conformance suite'), () => {});
    return;
  }
  for (const p of prepared) {
    if (p.skip !== null) {
      it.skip(`${p.name} [${p.op}] (skipped: ${p.skip})`, () => {});
      continue;
    }
    it(`${p.name} [${p.op}]`, async () => {
      const r = await runPrepared(await getRuntime(), p);
      expect(r.status, r.reason).toBe('passed');
    });
  }
});

// The skipped tests are pinned by name in test/conformance-skips.txt (the one place to update).
const PINNED_SKIPS = fileURLToPath(new URL('./conformance-skips.txt', import.meta.url));
describe('ONNX conformance skips', () => {
  it.skipIf(!available)('are exactly the tests listed in test/conformance-skips.txt', () => {
    const pinned = readFileSync(PINNED_SKIPS, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const skipped = prepared.filter((p) => p.skip !== null).map((p) => p.name);
    const newlySkipped = skipped.filter((n) => !pinned.includes(n)).map((n) => `${n} (${prepared.find((p) => p.name === n)!.skip})`);
    const noLongerSkipped = pinned.filter((n) => !skipped.includes(n));
    expect({ newlySkipped, noLongerSkipped }, 'the skipped set changed; if that is intended, update test/conformance-skips.txt').toEqual({ newlySkipped: [], noLongerSkipped: [] });
  });
});

describe('the conformance comparison follows numpy.testing.assert_allclose', () => {
  const t = (dims: number[], v: number[]): OnnxTensor => ({ name: '', dtype: 'float32', dims, data: Float32Array.from(v) });
  it('passes within atol + rtol * |expected| and treats NaN as equal to NaN', () => {
    const r = compareOutputs([t([3], [1.0009, NaN, -2])], [t([3], [1, NaN, -2])], ['y']);
    expect(r.ok).toBe(true);
    expect(r.maxAbsErr).toBeCloseTo(0.0009, 6);
  });
  it('fails past the tolerance and names the worst element', () => {
    const r = compareOutputs([t([2], [1, 2.01])], [t([2], [1, 2])], ['y']);
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/output 'y'.*worst at 1/);
  });
  it('fails on a shape mismatch even with equal data', () => {
    const r = compareOutputs([t([2, 1], [1, 2])], [t([2], [1, 2])], ['y']);
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/shape \[2,1\], expected \[2\]/);
  });
  it('fails when one side is NaN', () => {
    expect(compareOutputs([t([1], [NaN])], [t([1], [0])], ['y']).ok).toBe(false);
  });
});
