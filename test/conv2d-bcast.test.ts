// The broadcast-GEMM conv variants (src/kernels/conv2d_bcast.ts) against the float64 CPU reference.
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, upload } from '../src/gpu/tensor.ts';
import { type Conv2dAttrs, type ConvEpilogue, conv2dRef, conv2dShape } from '../src/kernels/conv2d.ts';
import { type BcastTiling, bcastConvDispatch, bcastConvVariants, bcastUniformConvVariant, bcastUnsupported } from '../src/kernels/conv2d_bcast.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const size = (s: Shape) => s.reduce((a, b) => a * b, 1);
const TOL = { rtol: 1e-4, atol: 1e-5 };

// [name, x NHWC, w HWIO, attrs]: Inception's kernel shapes, strides and paddings, C off a multiple
// of 4 (scalar input loads), Co off a multiple of the 8 lanes (masked columns), M off the row block.
const cases: [string, number[], number[], Conv2dAttrs][] = [
  ['1x1', [2, 5, 7, 12], [1, 1, 12, 16], {}],
  ['3x3 SAME', [1, 9, 11, 8], [3, 3, 8, 16], { padding: 'SAME' }],
  ['3x3 VALID', [1, 9, 7, 4], [3, 3, 4, 8], {}],
  ['3x3 s2 VALID, C 3 (stem)', [2, 13, 11, 3], [3, 3, 3, 32], { strides: [2, 2] }],
  ['3x3 s2 SAME odd input', [1, 10, 9, 4], [3, 3, 4, 8], { strides: [2, 2], padding: 'SAME' }],
  ['1x7 SAME, C 5, Co 12', [1, 7, 9, 5], [1, 7, 5, 12], { padding: 'SAME' }],
  ['7x1 SAME, Co 20', [1, 9, 7, 8], [7, 1, 8, 20], { padding: 'SAME' }],
  ['5x5 SAME dilation 2, Co 7', [1, 11, 10, 6], [5, 5, 6, 7], { padding: 'SAME', dilations: [2, 2] }],
];

const VARIANTS = [...bcastConvVariants, bcastUniformConvVariant];

describe('broadcast conv variants match the float64 CPU reference', () => {
  for (const variant of VARIANTS) {
    for (const [name, xs, ws, attrs] of cases) {
      it(`${variant.name}: ${name}`, async () => {
        const rt = await getRuntime();
        const x = randomArray(size(xs), 1);
        const w = randomArray(size(ws), 2);
        const y = empty(rt, conv2dShape(xs, ws, attrs));
        const args = { x: upload(rt, x, xs), w: upload(rt, w, ws), y, attrs, epilogue: {}, channelOffset: 0, scratch: null };
        if (!variant.supports(rt, args)) {
          // Only vec4 columns with Co % 4 != 0, or subgroup loads without 8-lane subgroups, decline.
          const vec4 = variant.name.includes('x4');
          const lane = variant.name.includes('-lane-');
          expect((vec4 && ws[3] % 4 !== 0) || (lane && rt.subgroupSize !== 8)).toBe(true);
          expect(variant.dispatch(args)).toBeNull();
          return;
        }
        run(rt, variant.dispatch(args) ?? []);
        expectClose(await y.read(), conv2dRef(x, xs, w, ws, attrs), TOL, `${variant.name} ${name}`);
      });
    }
  }

  it('declines grouped convolutions', async () => {
    const rt = await getRuntime();
    const args = {
      x: empty(rt, [1, 4, 4, 4]),
      w: empty(rt, [3, 3, 2, 4]),
      y: empty(rt, [1, 4, 4, 4]),
      attrs: { groups: 2, padding: 'SAME' } as Conv2dAttrs,
      epilogue: {},
      channelOffset: 0,
      scratch: null,
    };
    for (const v of VARIANTS) expect(v.supports(rt, args)).toBe(false);
  });
});

describe('broadcast conv epilogue, channel slice and accumulation', () => {
  it('scale/shift/bias + relu6 into channels [3, 15) of a wider output, others untouched', async () => {
    const rt = await getRuntime();
    const xs = [1, 6, 7, 8];
    const ws = [3, 3, 8, 12];
    const attrs: Conv2dAttrs = { padding: 'SAME' };
    const x = randomArray(size(xs), 3, -2, 2);
    const w = randomArray(size(ws), 4);
    const [scale, shift, bias] = [randomArray(12, 5, 0.5, 2), randomArray(12, 6), randomArray(12, 7)];
    const epi: ConvEpilogue = { scale: upload(rt, scale, [12]), shift: upload(rt, shift, [12]), bias: upload(rt, bias, [12]), activation: 'relu6' };
    const before = randomArray(6 * 7 * 16, 8);
    const out = upload(rt, before, [1, 6, 7, 16]);
    for (const v of VARIANTS) {
      run(rt, v.dispatch({ x: upload(rt, x, xs), w: upload(rt, w, ws), y: out, attrs, epilogue: epi, channelOffset: 3, scratch: null }) ?? []);
    }
    const ref = conv2dRef(x, xs, w, ws, attrs, { scale, shift, bias, activation: 'relu6' });
    const expected = Float64Array.from(before);
    for (let p = 0; p < 42; p++) for (let c = 0; c < 12; c++) expected[p * 16 + 3 + c] = ref[p * 12 + c];
    expectClose(await out.read(), expected, TOL, 'channel slice');
  });

  const accumulating: BcastTiling[] = [
    { rows: 16, cols: 1, mad: 'mad', load: 'uniform', vec: 1 },
    { rows: 8, cols: 1, mad: 'fma', load: 'lane', vec: 4 },
  ];
  it.each(accumulating)('accumulates into the output when asked (input-gradient use): %o', async (tiling) => {
    const rt = await getRuntime();
    const co = 12;
    const xs = [1, 5, 6, 4];
    const ws = [3, 3, 4, co];
    const attrs: Conv2dAttrs = { padding: 'SAME' };
    if (bcastUnsupported(rt, tiling, co, 1)) {
      expect(rt.subgroupSize).not.toBe(8); // only the subgroup tiling may decline, and only there
      return;
    }
    const x = randomArray(size(xs), 9);
    const w = randomArray(size(ws), 10);
    const before = randomArray(5 * 6 * co, 11);
    const y = upload(rt, before, [1, 5, 6, co]);
    run(rt, [bcastConvDispatch(upload(rt, x, xs), upload(rt, w, ws), y, attrs, {}, 0, tiling, true)]);
    const ref = conv2dRef(x, xs, w, ws, attrs);
    expectClose(await y.read(), ref.map((v, i) => v + before[i]), TOL, 'accumulate');
  });

  it('the dispatch builder names the op, shapes and reason when a tiling cannot run', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 4, 4, 4]);
    const w = empty(rt, [1, 1, 4, 6]);
    const y = empty(rt, [1, 4, 4, 6]);
    expect(() => bcastConvDispatch(x, w, y, {}, {}, 0, { rows: 8, cols: 1, mad: 'mad', load: 'uniform', vec: 4 })).toThrow(
      /conv2d \(bcast\) x \[1,4,4,4\] w \[1,1,4,6\] -> \[1,4,4,6\]: vec4 columns need output channels divisible by 4 \(got 6\)/,
    );
  });

  it('names the op and shapes when the output does not fit', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 4, 4, 4]);
    const w = empty(rt, [1, 1, 4, 8]);
    const y = empty(rt, [1, 4, 4, 8]);
    expect(() => bcastConvDispatch(x, w, y, {}, {}, 2, { rows: 8, cols: 1, mad: 'mad', load: 'uniform', vec: 1 })).toThrow(
      /conv2d \(bcast\) x \[1,4,4,4\] w \[1,1,4,8\] -> \[1,4,4,8\]: output must be \[1,4,4,>=10\]/,
    );
  });
});
