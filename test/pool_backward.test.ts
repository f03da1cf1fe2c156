// Backward of max / average / global pooling (max pooling gathers over 8-pixel strips; the grid
// below is 19 pixels wide, so strips end inside and at the edge of the image) against
//  (a) the analytic float64 CPU backward reference (poolBackwardRef), and
//  (b) finite differences of the float64 CPU forward (poolRef) on the loss sum(r * y) for a random
//      projection r (so dy = r), central differences in float64.
// Tolerances:
//  - finite differences vs analytic (both float64): average pooling is linear, max pooling is
//    linear away from ties (random inputs have none within h = 1e-7), so |fd - analytic| <= 1e-6.
//  - GPU (float32) vs analytic float64: sums of a few dy / count terms: |gpu - ref| <= 1e-5 + 1e-5 |ref|.
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, upload } from '../src/gpu/tensor.ts';
import { type PoolAttrs, type PoolMode, globalPoolAttrs, poolRef, poolShape } from '../src/kernels/pool.ts';
import {
  globalAvgPoolBackwardDispatch,
  poolBackward,
  poolBackwardDispatch,
  poolBackwardRef,
} from '../src/kernels/pool_backward.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const size = (s: Shape) => s.reduce((a, b) => a * b, 1);
const GPU_TOL = { rtol: 1e-5, atol: 1e-5 };
const FD_TOL = { rtol: 0, atol: 1e-6 };
const FD_H = 1e-7;
const F32_MAX = 3.4028234663852886e38;

function finiteDiff(v: Float64Array, loss: (v: Float64Array) => number): Float64Array {
  const g = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const keep = v[i];
    v[i] = keep + FD_H;
    const up = loss(v);
    v[i] = keep - FD_H;
    const down = loss(v);
    v[i] = keep;
    g[i] = (up - down) / (2 * FD_H);
  }
  return g;
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** FD vs analytic reference, then GPU vs analytic reference. */
async function check(mode: PoolMode, xs: number[], attrs: PoolAttrs, seed: number, what: string) {
  const rt = await getRuntime();
  const ys = poolShape(mode, xs, attrs);
  const x = randomArray(size(xs), seed, -2, 2);
  const r = randomArray(size(ys), seed + 1);
  const ref = poolBackwardRef(mode, x, xs, r, ys, attrs);
  // A max window wholly in the padding outputs the constant -F32_MAX; it is left out of the loss
  // (its gradient is zero) so that it does not drown the differences in rounding.
  const loss = (v: Float64Array) => dot(r, poolRef(mode, v, xs, attrs).map((y) => (y === -F32_MAX ? 0 : y)));
  const fd = finiteDiff(Float64Array.from(x), loss);
  expectClose(ref, fd, FD_TOL, `${what}: analytic vs finite differences`);
  const dx = poolBackward(mode, upload(rt, x, xs), upload(rt, r, ys), attrs);
  expectClose(await dx.read(), ref, GPU_TOL, `${what}: GPU vs analytic`);
}

describe('pool backward: finite differences, analytic reference and GPU agree', () => {
  it('Inception v3: 3x3 s2 VALID max pool', () => check('max', [2, 11, 9, 8], { kernel: [3, 3], strides: [2, 2] }, 1, 'max 3x3 s2'));
  it('Inception v3: 3x3 s1 SAME avg pool (padding excluded)', () =>
    check('avg', [2, 7, 8, 3], { kernel: [3, 3], padding: 'SAME' }, 2, 'avg 3x3 SAME'));
  it('Inception v3: 8x8 VALID avg pool', () => check('avg', [2, 8, 8, 7], { kernel: [8, 8] }, 3, 'avg 8x8'));
  it('Inception v3 AuxLogits: 5x5 s3 VALID avg pool', () =>
    check('avg', [1, 17, 17, 3], { kernel: [5, 5], strides: [3, 3] }, 4, 'avg 5x5 s3'));
  it('max pool with windows wholly in the padding (no gradient from them)', () =>
    check('max', [1, 6, 7, 2], { kernel: [2, 2], padding: [2, 2, 0, 0] }, 5, 'max k2 pads 2'));
  it('global average pool', async () => {
    const xs = [2, 5, 7, 6];
    await check('avg', xs, globalPoolAttrs(xs), 6, 'global avg');
  });
  it('global max pool', async () => {
    const xs = [2, 4, 3, 5];
    await check('max', xs, globalPoolAttrs(xs), 7, 'global max');
  });

  // Every padding rule x window shape (strides, dilations, stride > kernel) x ceil mode x divisor,
  // on 4 channels (one vec4 per invocation) and 3 channels (one channel per invocation).
  const paddings: PoolAttrs['padding'][] = ['VALID', 'SAME', 'SAME_UPPER', 'SAME_LOWER', [1, 0, 2, 1], [2, 2, 2, 2]];
  const windows: Pick<PoolAttrs, 'kernel' | 'strides' | 'dilations'>[] = [
    { kernel: [3, 3], strides: [1, 1] },
    { kernel: [3, 2], strides: [2, 3] },
    { kernel: [2, 3], strides: [2, 2], dilations: [2, 1] },
    { kernel: [4, 4], strides: [3, 3] },
    { kernel: [2, 2], strides: [3, 3] },
  ];
  let seed = 100;
  for (const mode of ['max', 'avg'] as PoolMode[]) {
    for (const padding of paddings) {
      for (const w of windows) {
        for (const ceilMode of Array.isArray(padding) ? [false, true] : [false]) {
          for (const countIncludePad of mode === 'avg' && Array.isArray(padding) ? [false, true] : [false]) {
            const attrs: PoolAttrs = { ...w, padding, ceilMode, countIncludePad };
            const name = `${mode} ${JSON.stringify(attrs)}`;
            const s = (seed += 2);
            it(name, () => check(mode, [1, 9, 19, 3 + (s % 4 === 0 ? 1 : 0)], attrs, s, name));
          }
        }
      }
    }
  }
});

describe('max pool ties', () => {
  it('the gradient goes to the first maximum in window order', async () => {
    const rt = await getRuntime();
    const xs = [1, 7, 6, 4];
    const attrs: PoolAttrs = { kernel: [3, 3], strides: [2, 1], padding: 'SAME' };
    // Values in {0, 1, 2}: nearly every window has several maxima.
    const x = randomArray(size(xs), 41, 0, 3).map(Math.floor);
    const ys = poolShape('max', xs, attrs);
    const dy = randomArray(size(ys), 42);
    const ref = poolBackwardRef('max', x, xs, dy, ys, attrs);
    expectClose(await poolBackward('max', upload(rt, x, xs), upload(rt, dy, ys), attrs).read(), ref, GPU_TOL, 'ties');
    // Constant input: every window's gradient lands on its first tap inside the input.
    const ones = new Float32Array(size(xs)).fill(1);
    const dx = await poolBackward('max', upload(rt, ones, xs), upload(rt, dy, ys), attrs).read();
    expectClose(dx, poolBackwardRef('max', ones, xs, dy, ys, attrs), GPU_TOL, 'constant input');
    expect(dx[(2 * 6 + 1) * 4]).toBe(0); // row 2 is never the first row of a window inside the input
  });
});

describe('accumulate and dy channel slices', () => {
  const slices: [string, number, number][] = [
    ['slice at offset 3 of 10', 3, 10],
    ['whole tensor', 0, 4],
  ];
  const ops: [PoolMode, PoolAttrs][] = [
    ['max', { kernel: [3, 3], strides: [2, 2], padding: 'SAME' }],
    ['avg', { kernel: [3, 3], padding: [1, 1, 1, 1], countIncludePad: true }],
  ];
  for (const [mode, attrs] of ops) {
    for (const [sname, off, width] of slices) {
      it(`${mode}, ${sname}, accumulate`, async () => {
        const rt = await getRuntime();
        const xs = [2, 7, 9, 4];
        const ys = poolShape(mode, xs, attrs);
        const wide = [...ys.slice(0, 3), width];
        const x = randomArray(size(xs), 51);
        const dy = randomArray(size(wide), 52);
        const prev = randomArray(size(xs), 53);
        const dx = upload(rt, prev, xs);
        run(rt, [poolBackwardDispatch(mode, upload(rt, x, xs), upload(rt, dy, wide), dx, attrs, { accumulate: true, dyChannelOffset: off })]);
        const ref = poolBackwardRef(mode, x, xs, dy, wide, attrs, off).map((v, i) => v + prev[i]);
        expectClose(await dx.read(), ref, GPU_TOL, `${mode} ${sname}`);
      });
    }
  }

  it('global average pool backward reads its slice of a wider dy', async () => {
    const rt = await getRuntime();
    const xs = [2, 5, 4, 6];
    const dy = randomArray(2 * 10, 61);
    const dx = empty(rt, xs);
    run(rt, [globalAvgPoolBackwardDispatch(upload(rt, new Float32Array(size(xs)), xs), upload(rt, dy, [2, 1, 1, 10]), dx, { dyChannelOffset: 2 })]);
    const ref = poolBackwardRef('avg', new Float32Array(size(xs)), xs, dy, [2, 1, 1, 10], globalPoolAttrs(xs), 2);
    expectClose(await dx.read(), ref, GPU_TOL, 'global avg slice');
  });
});

describe('pool backward rejects bad input with the op and shapes named', () => {
  it('dy of the wrong shape', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 8, 8, 4]);
    expect(() => poolBackwardDispatch('max', x, empty(rt, [1, 4, 4, 4]), empty(rt, [1, 8, 8, 4]), { kernel: [3, 3], strides: [2, 2] })).toThrow(
      /maxPoolGrad x \[1,8,8,4\] dy \[1,4,4,4\] -> dx \[1,8,8,4\]: dy \[1,4,4,4\] must be \[1,3,3,>=4\]/,
    );
  });
  it('dx of another shape than x', async () => {
    const rt = await getRuntime();
    expect(() => poolBackwardDispatch('avg', empty(rt, [1, 8, 8, 4]), empty(rt, [1, 8, 8, 4]), empty(rt, [1, 8, 8, 3]), { kernel: [1, 1] })).toThrow(
      /avgPoolGrad.*dx must have x's shape \[1,8,8,4\]/,
    );
  });
  it('countIncludePad on a max pool', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 4, 4, 1]);
    expect(() => poolBackwardDispatch('max', x, x, empty(rt, [1, 4, 4, 1]), { kernel: [1, 1], countIncludePad: true })).toThrow(
      /maxPoolGrad.*countIncludePad applies to average pooling only/,
    );
  });
});
