// Backward of conv2d: dx, dw (split-K) and db against
//  (a) the analytic float64 CPU backward references, and
//  (b) finite differences of the float64 CPU forward (conv2dRef) on the loss sum(r * y) for a
//      random projection r (so dy = r), central differences in float64.
// Tolerances:
//  - finite differences vs analytic (both float64): the loss is linear in x, w and b, so central
//    differences with h = 1e-3 are exact up to rounding: |fd - analytic| <= 1e-7 + 1e-7 |analytic|.
//  - GPU (float32) vs analytic float64: sums of up to ~2000 products of values in [-1, 1]:
//    |gpu - ref| <= 1e-4 + 1e-4 |ref|.
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, upload } from '../src/gpu/tensor.ts';
import { run } from '../src/gpu/recorder.ts';
import { type Conv2dAttrs, conv2dRef, conv2dShape } from '../src/kernels/conv2d.ts';
import {
  biasGradDispatch,
  biasGradRef,
  conv2dBackwardTuning,
  conv2dGradFilter,
  conv2dGradFilterDispatch,
  conv2dGradFilterRef,
  conv2dGradFilterScratchBytes,
  conv2dGradInput,
  conv2dGradInputDispatch,
  conv2dGradInputRef,
} from '../src/kernels/conv2d_backward.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

const size = (s: Shape) => s.reduce((a, b) => a * b, 1);
const GPU_TOL = { rtol: 1e-4, atol: 1e-4 };
const FD_TOL = { rtol: 1e-7, atol: 1e-7 };
const FD_H = 1e-3;
/** Finite differences are taken at every coordinate of tensors up to this size, else at a random sample. */
const FD_MAX_POINTS = 100;

// [name, x NHWC, w HWIO, attrs]: every kernel size Inception v3 and MobileNet use, strides
// (including stride > kernel, which leaves input pixels without any tap), dilations, each padding
// rule, groups and depthwise, odd sizes and channel counts on and off the vec4 paths.
const cases: [string, number[], number[], Conv2dAttrs][] = [
  ['1x1', [2, 5, 7, 12], [1, 1, 12, 8], {}],
  ['1x1 s2 (odd pixels get no gradient)', [1, 9, 7, 8], [1, 1, 8, 4], { strides: [2, 2] }],
  ['3x3 SAME', [1, 7, 9, 12], [3, 3, 12, 8], { padding: 'SAME' }],
  ['3x3 s2 VALID, 3 input channels (stem)', [2, 13, 11, 3], [3, 3, 3, 32], { strides: [2, 2] }],
  ['3x3 s2 SAME odd input', [1, 10, 9, 4], [3, 3, 4, 8], { strides: [2, 2], padding: 'SAME' }],
  ['5x5 SAME', [1, 8, 9, 6], [5, 5, 6, 4], { padding: 'SAME' }],
  ['1x7 SAME', [1, 7, 9, 5], [1, 7, 5, 12], { padding: 'SAME' }],
  ['7x1 SAME', [1, 9, 7, 8], [7, 1, 8, 12], { padding: 'SAME' }],
  ['1x3 SAME', [1, 6, 6, 8], [1, 3, 8, 4], { padding: 'SAME' }],
  ['3x1 SAME', [1, 6, 6, 8], [3, 1, 8, 4], { padding: 'SAME' }],
  ['3x3 dilation 2 SAME_LOWER', [1, 9, 10, 4], [3, 3, 4, 8], { dilations: [2, 2], padding: 'SAME_LOWER' }],
  ['3x2 explicit pads, dilation (2,1), Ci 6 Co 5', [1, 8, 8, 6], [3, 2, 6, 5], { padding: [1, 0, 2, 1], dilations: [2, 1] }],
  ['2x2 s(1,2) SAME_UPPER, Co 7', [1, 7, 8, 3], [2, 2, 3, 7], { strides: [1, 2], padding: 'SAME_UPPER' }],
  ['3x3 s(3,2) dilation (1,2) explicit pads', [1, 11, 10, 5], [3, 3, 5, 8], { strides: [3, 2], dilations: [1, 2], padding: [2, 1, 0, 3] }],
  ['2x2 s3 VALID (stride > kernel)', [1, 10, 11, 4], [2, 2, 4, 4], { strides: [3, 3] }],
  ['grouped 3 groups', [1, 8, 8, 6], [3, 3, 2, 6], { groups: 3, padding: 'SAME' }],
  ['grouped 2 groups s2, 3 outputs per group', [1, 7, 7, 4], [3, 3, 2, 6], { groups: 2, strides: [2, 2], padding: 'SAME' }],
  ['depthwise 3x3 s2 SAME', [1, 9, 9, 8], [3, 3, 1, 8], { groups: 8, strides: [2, 2], padding: 'SAME' }],
  ['depthwise multiplier 2', [1, 6, 6, 4], [3, 3, 1, 8], { groups: 4 }],
  ['8x8 VALID (logits-like)', [2, 8, 8, 16], [8, 8, 16, 4], {}],
];

/** Coordinates to difference: all of them for small tensors, else a seeded sample with both ends. */
function fdPoints(n: number, seed: number): number[] {
  if (n <= FD_MAX_POINTS) return Array.from({ length: n }, (_, i) => i);
  const r = rng(seed);
  const set = new Set([0, n - 1]);
  while (set.size < FD_MAX_POINTS) set.add(Math.floor(r() * n));
  return [...set];
}

/** Central differences of loss(v) at the chosen coordinates of v (float64), zero elsewhere. */
function finiteDiff(v: Float64Array, loss: (v: Float64Array) => number, points: number[]): Float64Array {
  const g = new Float64Array(v.length);
  for (const i of points) {
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

const pick = (a: ArrayLike<number>, points: number[]) => points.map((i) => a[i]);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

describe('conv2d backward: analytic float64 references agree with finite differences', () => {
  for (const [name, xs, ws, attrs] of cases) {
    it(name, () => {
      const ys = conv2dShape(xs, ws, attrs);
      const x = Float64Array.from(randomArray(size(xs), 1));
      const w = Float64Array.from(randomArray(size(ws), 2));
      const r = Float64Array.from(randomArray(size(ys), 3));
      const b = Float64Array.from(randomArray(ys[3], 4));

      const px = fdPoints(x.length, 5);
      const fdx = finiteDiff(x, (v) => dot(r, conv2dRef(v, xs, w, ws, attrs)), px);
      expectClose(pick(conv2dGradInputRef(r, ys, w, ws, xs, attrs), px), pick(fdx, px), FD_TOL, `${name} dx`);

      const pw = fdPoints(w.length, 6);
      const fdw = finiteDiff(w, (v) => dot(r, conv2dRef(x, xs, v, ws, attrs)), pw);
      expectClose(pick(conv2dGradFilterRef(x, xs, r, ys, ws, attrs), pw), pick(fdw, pw), FD_TOL, `${name} dw`);

      const all = Array.from(b, (_, i) => i);
      const fdb = finiteDiff(b, (v) => dot(r, conv2dRef(x, xs, w, ws, attrs, { bias: v })), all);
      expectClose(biasGradRef(r, ys, ys[3]), fdb, FD_TOL, `${name} db`);
    });
  }
});

describe('conv2d backward kernels match the analytic float64 references', () => {
  for (const general of [false, true]) {
    for (const [name, xs, ws, attrs] of cases) {
      const fast = (attrs.groups ?? 1) === 1 && !general;
      if (general && (attrs.groups ?? 1) > 1) continue; // grouped cases always take the general path
      it(`${name} (${fast ? 'GEMM' : 'general'} path)`, async () => {
        const rt = await getRuntime();
        conv2dBackwardTuning.forceGeneral = general;
        try {
          const ys = conv2dShape(xs, ws, attrs);
          const x = randomArray(size(xs), 1);
          const w = randomArray(size(ws), 2);
          const dy = randomArray(size(ys), 3);
          const tdy = upload(rt, dy, ys);
          const dx = conv2dGradInput(tdy, upload(rt, w, ws), xs, attrs);
          expectClose(await dx.read(), conv2dGradInputRef(dy, ys, w, ws, xs, attrs), GPU_TOL, `${name} dx`);
          const dw = conv2dGradFilter(upload(rt, x, xs), tdy, ws, attrs);
          expectClose(await dw.read(), conv2dGradFilterRef(x, xs, dy, ys, ws, attrs), GPU_TOL, `${name} dw`);
        } finally {
          conv2dBackwardTuning.forceGeneral = false;
        }
      });
    }
  }

  it('bias gradient', async () => {
    const rt = await getRuntime();
    for (const ys of [[2, 5, 7, 12], [1, 3, 3, 1001], [3, 1, 1, 5]]) {
      const dy = randomArray(size(ys), 7);
      const db = empty(rt, [ys[3]]);
      run(rt, [biasGradDispatch(upload(rt, dy, ys), db)]);
      expectClose(await db.read(), biasGradRef(dy, ys, ys[3]), GPU_TOL, `db ${ys}`);
    }
  });
});

describe('filter gradient split-K', () => {
  const xs = [2, 17, 15, 8];
  const ws = [3, 3, 8, 12];
  const attrs: Conv2dAttrs = { padding: 'SAME' }; // 510 output pixels

  it('cuts a long reduction into chunks with a scratch of the announced size', async () => {
    const rt = await getRuntime();
    const bytes = conv2dGradFilterScratchBytes(xs, ws, attrs);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes % (size(ws) * 4)).toBe(0);
    const x = randomArray(size(xs), 11);
    const dy = randomArray(size(conv2dShape(xs, ws, attrs)), 12);
    const dw = empty(rt, ws);
    const ds = conv2dGradFilterDispatch(upload(rt, x, xs), upload(rt, dy, conv2dShape(xs, ws, attrs)), dw, attrs, empty(rt, [bytes / 4]));
    expect(ds.length).toBe(2);
    run(rt, ds);
    expectClose(await dw.read(), conv2dGradFilterRef(x, xs, dy, conv2dShape(xs, ws, attrs), ws, attrs), GPU_TOL, 'dw');
  });

  for (const general of [false, true]) {
    for (const splits of [1, 3, 7, 510]) {
      it(`${splits} chunks, ${general ? 'general' : 'GEMM'} path`, async () => {
        const rt = await getRuntime();
        Object.assign(conv2dBackwardTuning, { splits, forceGeneral: general });
        try {
          const ys = conv2dShape(xs, ws, attrs);
          const x = randomArray(size(xs), 13);
          const dy = randomArray(size(ys), 14);
          const bytes = conv2dGradFilterScratchBytes(xs, ws, attrs);
          expect(bytes).toBe(splits > 1 ? splits * size(ws) * 4 : 0);
          const dw = conv2dGradFilter(upload(rt, x, xs), upload(rt, dy, ys), ws, attrs);
          expectClose(await dw.read(), conv2dGradFilterRef(x, xs, dy, ys, ws, attrs), GPU_TOL, 'dw');
        } finally {
          Object.assign(conv2dBackwardTuning, { splits: 0, forceGeneral: false });
        }
      });
    }
  }

  it('refuses a missing or small scratch, naming the size it needs', async () => {
    const rt = await getRuntime();
    const ys = conv2dShape(xs, ws, attrs);
    const x = upload(rt, randomArray(size(xs), 1), xs);
    const dy = upload(rt, randomArray(size(ys), 2), ys);
    const need = conv2dGradFilterScratchBytes(xs, ws, attrs);
    expect(() => conv2dGradFilterDispatch(x, dy, empty(rt, ws), attrs, null)).toThrow(
      new RegExp(`conv2dGradFilter x \\[2,17,15,8\\].*must hold ${need} bytes`),
    );
    expect(() => conv2dGradFilterDispatch(x, dy, empty(rt, ws), attrs, empty(rt, [4]))).toThrow(/must hold/);
  });
});

describe('accumulate and dy channel slices', () => {
  // A conv whose dy is channels [off, off + Co) of a wider concat gradient; offsets on and off a
  // multiple of 4 take the vec4 and scalar dy loads. Co 8 here.
  const slices: [string, number, number][] = [
    ['aligned slice (offset 4 of 16)', 4, 16],
    ['unaligned slice (offset 3 of 13)', 3, 13],
    ['whole tensor, no slice', 0, 8],
  ];
  const geo: [string, number[], number[], Conv2dAttrs][] = [
    ['3x3 SAME', [2, 7, 6, 16], [3, 3, 16, 8], { padding: 'SAME' }],
    ['depthwise s2', [1, 7, 6, 8], [3, 3, 1, 8], { groups: 8, strides: [2, 2], padding: 'SAME' }],
  ];
  for (const [gname, xs, ws, attrs] of geo) {
    for (const [sname, off, width] of slices) {
      for (const splits of [0, 4]) {
        it(`${gname}, ${sname}, accumulate${splits ? `, ${splits} chunks` : ''}`, async () => {
          const rt = await getRuntime();
          conv2dBackwardTuning.splits = splits;
          try {
            const ys = conv2dShape(xs, ws, attrs);
            const wide = [...ys.slice(0, 3), width];
            const x = randomArray(size(xs), 21);
            const w = randomArray(size(ws), 22);
            const dyWide = randomArray(size(wide), 23);
            const tdy = upload(rt, dyWide, wide);
            const prevX = randomArray(size(xs), 24);
            const prevW = randomArray(size(ws), 25);
            const prevB = randomArray(ys[3], 26);
            const dx = upload(rt, prevX, xs);
            const dw = upload(rt, prevW, ws);
            const db = upload(rt, prevB, [ys[3]]);
            const opts = { accumulate: true, dyChannelOffset: off };
            const bytes = conv2dGradFilterScratchBytes(xs, ws, attrs);
            const scratch = bytes ? empty(rt, [bytes / 4]) : null;
            // One pass, as a plan would record it.
            run(rt, [
              conv2dGradInputDispatch(tdy, upload(rt, w, ws), dx, attrs, opts),
              ...conv2dGradFilterDispatch(upload(rt, x, xs), tdy, dw, attrs, scratch, opts),
              biasGradDispatch(tdy, db, opts),
            ]);
            const add = (a: Float32Array, b: Float64Array) => b.map((v, i) => v + a[i]);
            expectClose(await dx.read(), add(prevX, conv2dGradInputRef(dyWide, wide, w, ws, xs, attrs, off)), GPU_TOL, 'dx');
            expectClose(await dw.read(), add(prevW, conv2dGradFilterRef(x, xs, dyWide, wide, ws, attrs, off)), GPU_TOL, 'dw');
            expectClose(await db.read(), add(prevB, biasGradRef(dyWide, wide, ys[3], off)), GPU_TOL, 'db');
          } finally {
            conv2dBackwardTuning.splits = 0;
          }
        });
      }
    }
  }
});

describe("filter gradient: pixels per reduction step on Mixed_7's small maps", () => {
  // Small versions of Mixed_7's layers (8x8 maps, N*8*8 pixels, C and Co past one tile): each
  // pixel count per step sums that many pixels' products before adding them into the
  // accumulators, with an odd pixel count so that the last step is partly past the chunk's end.
  const cases: [string, number[], number[], Conv2dAttrs][] = [
    ['1x1 (Mixed_7b Branch_1/Conv2d_0a_1x1)', [3, 8, 8, 72], [1, 1, 72, 40], { padding: 'SAME' }],
    ['3x3 (Mixed_7b Branch_2/Conv2d_0b_3x3)', [3, 8, 8, 36], [3, 3, 36, 44], { padding: 'SAME' }],
    ['3x3 s2 VALID (Mixed_7a Branch_0/Conv2d_1a_3x3)', [2, 17, 17, 20], [3, 3, 20, 36], { strides: [2, 2], padding: 'VALID' }],
  ];
  for (const [name, xs, ws, attrs] of cases) {
    for (const pixels of [1, 2, 3]) {
      it(`${name}, ${pixels} pixel(s) per step`, async () => {
        const rt = await getRuntime();
        conv2dBackwardTuning.filterPixels = pixels;
        try {
          const ys = conv2dShape(xs, ws, attrs);
          const x = randomArray(size(xs), 31);
          const dy = randomArray(size(ys), 32);
          const dw = conv2dGradFilter(upload(rt, x, xs), upload(rt, dy, ys), ws, attrs);
          expectClose(await dw.read(), conv2dGradFilterRef(x, xs, dy, ys, ws, attrs), GPU_TOL, 'dw');
        } finally {
          conv2dBackwardTuning.filterPixels = 0;
        }
      });
    }
  }
});

describe('without subgroups', () => {
  it('the GEMM paths work without subgroup shuffles', async () => {
    const rt = await getRuntime();
    Object.defineProperty(rt, 'subgroupSize', { value: 1, configurable: true });
    try {
      for (const [name, xs, ws, attrs] of cases.filter(([, , , a]) => (a.groups ?? 1) === 1).slice(0, 6)) {
        const ys = conv2dShape(xs, ws, attrs);
        const x = randomArray(size(xs), 31);
        const w = randomArray(size(ws), 32);
        const dy = randomArray(size(ys), 33);
        const tdy = upload(rt, dy, ys);
        const dx = conv2dGradInput(tdy, upload(rt, w, ws), xs, attrs);
        expectClose(await dx.read(), conv2dGradInputRef(dy, ys, w, ws, xs, attrs), GPU_TOL, `${name} dx`);
        const dw = conv2dGradFilter(upload(rt, x, xs), tdy, ws, attrs);
        expectClose(await dw.read(), conv2dGradFilterRef(x, xs, dy, ys, ws, attrs), GPU_TOL, `${name} dw`);
      }
    } finally {
      delete (rt as unknown as Record<string, unknown>).subgroupSize;
    }
  });
});

describe('conv2d backward rejects bad input with the op and shapes named', () => {
  it('dy of the wrong spatial size', async () => {
    const rt = await getRuntime();
    const dy = empty(rt, [1, 5, 5, 8]);
    const w = empty(rt, [3, 3, 4, 8]);
    expect(() => conv2dGradInputDispatch(dy, w, empty(rt, [1, 8, 8, 4]), { padding: 'SAME' })).toThrow(
      /conv2dGradInput dy \[1,5,5,8\] w \[3,3,4,8\] -> dx \[1,8,8,4\]: dy \[1,5,5,8\] must be \[1,8,8,>=8\]/,
    );
  });
  it('a channel offset past dy', async () => {
    const rt = await getRuntime();
    const dy = empty(rt, [1, 6, 6, 10]);
    expect(() => conv2dGradInputDispatch(dy, empty(rt, [3, 3, 4, 8]), empty(rt, [1, 8, 8, 4]), {}, { dyChannelOffset: 3 })).toThrow(
      /must be \[1,6,6,>=11\] to hold channels 3\.\.11/,
    );
  });
  it('a filter that does not match the input', async () => {
    const rt = await getRuntime();
    expect(() => conv2dGradFilterDispatch(empty(rt, [1, 8, 8, 5]), empty(rt, [1, 6, 6, 8]), empty(rt, [3, 3, 4, 8]))).toThrow(
      /conv2dGradFilter x \[1,8,8,5\].*5 channels/,
    );
  });
  it('bias gradient wider than dy', async () => {
    const rt = await getRuntime();
    expect(() => biasGradDispatch(empty(rt, [1, 2, 2, 8]), empty(rt, [8]), { dyChannelOffset: 1 })).toThrow(/biasGrad.*channels 1\.\.9/);
  });
});
