import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { upload } from '../src/gpu/tensor.ts';
import { classScore, classScoreRef } from '../src/kernels/class_score.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

describe('class score', () => {
  it('picks each example\'s class logit and seeds a one-hot gradient (= its finite difference)', async () => {
    const rt = await getRuntime();
    const logits = randomArray(3 * 7, 1, -5, 5);
    const labels = Int32Array.from([6, 0, 3]);
    const { score, dLogits } = classScore(upload(rt, logits, [3, 7]), upload(rt, labels, [3]));
    const ref = classScoreRef(logits, 7, labels);
    expectClose(await score.read(), ref.score, { rtol: 0, atol: 0 }, 'score');
    expectClose(await dLogits.read(), ref.dLogits, { rtol: 0, atol: 0 }, 'dLogits');
    // d score_n / d logit_j is 1 exactly at (n, label_n): the score is linear in the logits.
    expect(Array.from(ref.dLogits).reduce((a, b) => a + b, 0)).toBe(3);
  });
});
