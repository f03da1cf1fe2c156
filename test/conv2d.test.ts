import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, upload } from '../src/gpu/tensor.ts';
import { type Conv2dAttrs, type ConvEpilogue, conv2d, conv2dPath, conv2dRef, conv2dShape } from '../src/kernels/conv2d.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const size = (s: Shape) => s.reduce((a, b) => a * b, 1);

// [name, x NHWC, w HWIO, attrs]: every kernel size Inception v3 and MobileNet use, strides,
// dilations, each padding rule, groups and depthwise, odd sizes, channel counts on and off the fast path.
const cases: [string, number[], number[], Conv2dAttrs][] = [
  ['1x1', [2, 5, 7, 12], [1, 1, 12, 8], {}],
  ['3x3 SAME', [1, 9, 11, 8], [3, 3, 8, 16], { padding: 'SAME' }],
  ['3x3 s2 VALID, 3 input channels (stem)', [2, 13, 11, 3], [3, 3, 3, 32], { strides: [2, 2] }],
  ['3x3 s2 SAME odd input', [1, 10, 9, 4], [3, 3, 4, 8], { strides: [2, 2], padding: 'SAME' }],
  ['5x5 SAME', [1, 8, 9, 6], [5, 5, 6, 4], { padding: 'SAME' }],
  ['1x7 SAME', [1, 7, 9, 5], [1, 7, 5, 12], { padding: 'SAME' }],
  ['7x1 SAME', [1, 9, 7, 8], [7, 1, 8, 12], { padding: 'SAME' }],
  ['1x3 SAME', [1, 6, 6, 8], [1, 3, 8, 4], { padding: 'SAME' }],
  ['3x1 SAME', [1, 6, 6, 8], [3, 1, 8, 4], { padding: 'SAME' }],
  ['3x3 dilation 2 SAME_LOWER', [1, 9, 10, 4], [3, 3, 4, 8], { dilations: [2, 2], padding: 'SAME_LOWER' }],
  ['3x2 explicit pads, dilation (2,1)', [1, 8, 8, 6], [3, 2, 6, 5], { padding: [1, 0, 2, 1], dilations: [2, 1] }],
  ['2x2 s(1,2) SAME_UPPER, Co 7 (general path)', [1, 7, 8, 3], [2, 2, 3, 7], { strides: [1, 2], padding: 'SAME_UPPER' }],
  ['grouped 3 groups', [1, 8, 8, 6], [3, 3, 2, 6], { groups: 3, padding: 'SAME' }],
  ['depthwise 3x3 s2 SAME', [1, 9, 9, 8], [3, 3, 1, 8], { groups: 8, strides: [2, 2], padding: 'SAME' }],
  ['depthwise 3x3 s1 SAME odd width', [2, 7, 11, 12], [3, 3, 1, 12], { groups: 12, padding: 'SAME' }],
  ['depthwise 3x3 dilation 2 VALID', [1, 9, 10, 4], [3, 3, 1, 4], { groups: 4, dilations: [2, 2] }],
  ['depthwise multiplier 2', [1, 6, 6, 4], [3, 3, 1, 8], { groups: 4 }],
  ['8x8 VALID (logits-like)', [2, 8, 8, 16], [8, 8, 16, 4], {}],
];

describe('conv2d matches the float64 CPU reference', () => {
  for (const [name, xs, ws, attrs] of cases) {
    it(name, async () => {
      const rt = await getRuntime();
      const x = randomArray(size(xs), 1);
      const w = randomArray(size(ws), 2);
      const y = conv2d(upload(rt, x, xs), upload(rt, w, ws), attrs);
      expect(y.shape).toEqual(conv2dShape(xs, ws, attrs));
      expectClose(await y.read(), conv2dRef(x, xs, w, ws, attrs), { rtol: 1e-4, atol: 1e-5 }, name);
    });
  }

  it('takes a fast path for Inception v3 and MobileNet (stem, pointwise, depthwise) shapes', () => {
    expect(conv2dPath([1, 299, 299, 3], [3, 3, 3, 32], { strides: [2, 2] })).toBe('gemm');
    expect(conv2dPath([1, 17, 17, 128], [1, 7, 128, 192], { padding: 'SAME' })).toBe('gemm');
    expect(conv2dPath([1, 16, 16, 8], [1, 1, 8, 16], {})).toBe('gemm');
    expect(conv2dPath([1, 128, 128, 3], [3, 3, 3, 8], { strides: [2, 2], padding: 'SAME' })).toBe('gemm'); // MobileNet 0.25 stem
    expect(conv2dPath([1, 64, 64, 8], [3, 3, 1, 8], { groups: 8, padding: 'SAME' })).toBe('depthwise');
    expect(conv2dPath([1, 8, 8, 6], [3, 3, 2, 6], { groups: 3 })).toBe('general');
  });
});

describe('conv2d epilogue and channel-offset output', () => {
  const epilogues: [string, boolean, boolean, boolean, 'none' | 'relu' | 'relu6'][] = [
    ['batchnorm scale/shift + relu', true, true, false, 'relu'],
    ['bias + relu6', false, false, true, 'relu6'],
    ['scale + shift + bias', true, true, true, 'none'],
    ['shift only', false, true, false, 'none'],
  ];
  for (const fast of [true, false]) {
    for (const [name, hasScale, hasShift, hasBias, activation] of epilogues) {
      it(`${name} (${fast ? 'fast' : 'general'} path)`, async () => {
        const rt = await getRuntime();
        const xs = [1, 7, 6, 5];
        const co = fast ? 8 : 6;
        const ws = [3, 3, 5, co];
        const attrs: Conv2dAttrs = { padding: 'SAME' };
        const x = randomArray(size(xs), 3, -2, 2);
        const w = randomArray(size(ws), 4);
        const scale = randomArray(co, 5, 0.5, 2);
        const shift = randomArray(co, 6);
        const bias = randomArray(co, 7);
        const epi: ConvEpilogue = { activation };
        const refEpi: Parameters<typeof conv2dRef>[5] = { activation };
        if (hasScale) [epi.scale, refEpi.scale] = [upload(rt, scale, [co]), scale];
        if (hasShift) [epi.shift, refEpi.shift] = [upload(rt, shift, [co]), shift];
        if (hasBias) [epi.bias, refEpi.bias] = [upload(rt, bias, [co]), bias];
        const y = conv2d(upload(rt, x, xs), upload(rt, w, ws), attrs, epi);
        expectClose(await y.read(), conv2dRef(x, xs, w, ws, attrs, refEpi), { rtol: 1e-4, atol: 1e-5 }, name);
      });
    }
  }

  it('two convs write their channel slices of one concat output', async () => {
    const rt = await getRuntime();
    const xs = [1, 5, 5, 4];
    const x = randomArray(size(xs), 8);
    const wa = randomArray(1 * 1 * 4 * 8, 9);
    const wb = randomArray(3 * 3 * 4 * 6, 10);
    const xt = upload(rt, x, xs);
    const out = empty(rt, [1, 5, 5, 14]);
    conv2d(xt, upload(rt, wa, [1, 1, 4, 8]), {}, { activation: 'relu' }, { tensor: out, channelOffset: 0 });
    conv2d(xt, upload(rt, wb, [3, 3, 4, 6]), { padding: 'SAME' }, {}, { tensor: out, channelOffset: 8 });
    const ra = conv2dRef(x, xs, wa, [1, 1, 4, 8], {}, { activation: 'relu' });
    const rb = conv2dRef(x, xs, wb, [3, 3, 4, 6], { padding: 'SAME' });
    const expected = new Float64Array(25 * 14);
    for (let p = 0; p < 25; p++) {
      for (let c = 0; c < 8; c++) expected[p * 14 + c] = ra[p * 8 + c];
      for (let c = 0; c < 6; c++) expected[p * 14 + 8 + c] = rb[p * 6 + c];
    }
    expectClose(await out.read(), expected, { rtol: 1e-4, atol: 1e-5 }, 'concat output');
  });
});

describe('conv2d rejects bad input with the op and shapes named', () => {
  it('channel mismatch', () => {
    expect(() => conv2dShape([1, 8, 8, 5], [3, 3, 4, 8])).toThrow(/conv2d x \[1,8,8,5\] w \[3,3,4,8\].*5 channels/);
  });
  it('window larger than the input', () => {
    expect(() => conv2dShape([1, 2, 2, 4], [3, 3, 4, 8], { padding: 'VALID' })).toThrow(/does not fit a 2x2 input/);
  });
  it('groups that do not divide the channels', () => {
    expect(() => conv2dShape([1, 8, 8, 6], [3, 3, 2, 8], { groups: 4 })).toThrow(/groups 4/);
  });
  it('epilogue of the wrong length', async () => {
    const rt = await getRuntime();
    const x = upload(rt, randomArray(64, 1), [1, 4, 4, 4]);
    const w = upload(rt, randomArray(4 * 8, 2), [1, 1, 4, 8]);
    expect(() => conv2d(x, w, {}, { bias: upload(rt, [1, 2, 3], [3]) })).toThrow(/bias \[3\] must have 8 values/);
  });
  it('a buffer past the device binding limit is refused before Dawn sees it', async () => {
    const rt = await getRuntime();
    const max = rt.limits.maxStorageBufferBindingSize;
    const side = Math.ceil(Math.sqrt(max / 4 / 64)) + 1;
    expect(() => empty(rt, [1, side, side, 64])).toThrow(/exceeds the device's maxStorageBufferBindingSize/);
  });
});

describe('depthwise conv2d with the MobileNet epilogue', () => {
  it('batchnorm scale/shift + relu6 into a channel slice', async () => {
    const rt = await getRuntime();
    const xs = [1, 9, 7, 8];
    const ws = [3, 3, 1, 8];
    const attrs: Conv2dAttrs = { groups: 8, strides: [2, 2], padding: 'SAME' };
    const x = randomArray(size(xs), 21, -3, 3);
    const w = randomArray(size(ws), 22);
    const scale = randomArray(8, 23, 0.5, 2);
    const shift = randomArray(8, 24);
    const out = empty(rt, [1, 5, 4, 12]);
    conv2d(upload(rt, x, xs), upload(rt, w, ws), attrs, { scale: upload(rt, scale, [8]), shift: upload(rt, shift, [8]), activation: 'relu6' }, { tensor: out, channelOffset: 4 });
    const ref = conv2dRef(x, xs, w, ws, attrs, { scale, shift, activation: 'relu6' });
    const got = await out.read();
    const slice = new Float32Array(20 * 8);
    for (let p = 0; p < 20; p++) for (let c = 0; c < 8; c++) slice[p * 8 + c] = got[p * 12 + 4 + c];
    expectClose(slice, ref, { rtol: 1e-4, atol: 1e-5 }, 'depthwise slice');
  });
});
