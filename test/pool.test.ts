import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';
import {
  type PoolAttrs,
  type PoolMode,
  globalAvgPool,
  globalMaxPool,
  pool,
  poolRef,
  poolShape,
} from '../src/kernels/pool.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const TOL = { rtol: 1e-5, atol: 1e-6 };

async function check(mode: PoolMode, shape: [number, number, number, number], attrs: PoolAttrs, seed = 1) {
  const rt = await getRuntime();
  const data = randomArray(shape.reduce((a, b) => a * b), seed, -2, 2);
  const y = pool(mode, upload(rt, data, shape), attrs);
  expect(y.shape).toEqual(poolShape(mode, shape, attrs));
  expectClose(await y.read(), poolRef(mode, data, shape, attrs), TOL, `${mode} ${JSON.stringify(attrs)}`);
  return y.shape;
}

describe('pooling matches the float64 CPU reference', () => {
  // Inception v3's pools (small batch and channel counts, real spatial sizes).
  it('Inception v3: 3x3 s2 VALID max pool 147 -> 73', async () => {
    expect(await check('max', [1, 147, 147, 5], { kernel: [3, 3], strides: [2, 2], padding: 'VALID' })).toEqual([
      1, 73, 73, 5,
    ]);
  });
  it('Inception v3: 3x3 s1 SAME avg pool 35x35 (padding excluded from the divisor)', async () => {
    expect(await check('avg', [2, 35, 35, 3], { kernel: [3, 3], strides: [1, 1], padding: 'SAME' })).toEqual([
      2, 35, 35, 3,
    ]);
  });
  it('Inception v3: 8x8 VALID avg pool 8 -> 1', async () => {
    expect(await check('avg', [2, 8, 8, 7], { kernel: [8, 8], padding: 'VALID' })).toEqual([2, 1, 1, 7]);
  });
  it('Inception v3 AuxLogits: 5x5 s3 VALID avg pool 17 -> 5', async () => {
    expect(await check('avg', [1, 17, 17, 6], { kernel: [5, 5], strides: [3, 3], padding: 'VALID' })).toEqual([
      1, 5, 5, 6,
    ]);
  });

  const paddings: PoolAttrs['padding'][] = ['VALID', 'SAME', 'SAME_UPPER', 'SAME_LOWER', [1, 0, 2, 1], [2, 2, 2, 2]];
  const windows: Pick<PoolAttrs, 'kernel' | 'strides' | 'dilations'>[] = [
    { kernel: [3, 3], strides: [1, 1] },
    { kernel: [3, 2], strides: [2, 3] },
    { kernel: [2, 3], strides: [2, 2], dilations: [2, 1] },
    { kernel: [4, 4], strides: [3, 3] },
  ];
  let seed = 10;
  for (const mode of ['max', 'avg'] as PoolMode[]) {
    for (const padding of paddings) {
      for (const w of windows) {
        for (const ceilMode of Array.isArray(padding) ? [false, true] : [false]) {
          for (const countIncludePad of mode === 'avg' && Array.isArray(padding) ? [false, true] : [false]) {
            // Explicit pads must stay below the kernel size (ONNX's rule), else windows fall wholly in padding.
            if (Array.isArray(padding) && padding.some((p, i) => p >= w.kernel[i % 2])) continue;
            const attrs: PoolAttrs = { ...w, padding, ceilMode, countIncludePad };
            const s = seed++;
            it(`${mode} on 2x11x9x3 ${JSON.stringify(attrs)}`, async () => {
              await check(mode, [2, 11, 9, 3], attrs, s);
            });
          }
        }
      }
    }
  }

  it('ceil mode drops a last window that would start in the end padding', () => {
    // ONNX test_averagepool_2d_ceil_last_window_starts_on_pad: 2x2 input, pads 1, k3 s3.
    expect(poolShape('avg', [1, 2, 2, 3], { kernel: [3, 3], strides: [3, 3], padding: [1, 1, 1, 1], ceilMode: true })).toEqual([
      1, 1, 1, 3,
    ]);
  });

  it('global average and max pool on 2x7x5x9', async () => {
    const rt = await getRuntime();
    const shape = [2, 7, 5, 9] as const;
    const data = randomArray(2 * 7 * 5 * 9, 99);
    const x = upload(rt, data, shape);
    const attrs: PoolAttrs = { kernel: [7, 5] };
    const a = globalAvgPool(x);
    const m = globalMaxPool(x);
    expect(a.shape).toEqual([2, 1, 1, 9]);
    expectClose(await a.read(), poolRef('avg', data, shape, attrs), TOL, 'globalAvgPool');
    expectClose(await m.read(), poolRef('max', data, shape, attrs), TOL, 'globalMaxPool');
  });

  it('writes into a channel slice of a wider output and leaves the other channels alone', async () => {
    const rt = await getRuntime();
    const shape = [1, 9, 9, 3] as const;
    const data = randomArray(9 * 9 * 3, 5);
    const attrs: PoolAttrs = { kernel: [3, 3], strides: [2, 2] };
    const wide = upload(rt, new Float32Array(4 * 4 * 8).fill(7), [1, 4, 4, 8]);
    pool('max', upload(rt, data, shape), attrs, { tensor: wide, channelOffset: 4 });
    const got = await wide.read();
    const want = poolRef('max', data, shape, attrs);
    for (let pix = 0; pix < 16; pix++) {
      for (let c = 0; c < 8; c++) {
        const e = c >= 4 && c < 7 ? want[pix * 3 + c - 4] : 7;
        expect(got[pix * 8 + c], `pixel ${pix} channel ${c}`).toBeCloseTo(e, 5);
      }
    }
  });
});

describe('pooling: hand-computed values (ONNX examples) pin the reference itself', () => {
  const x16 = Float64Array.from({ length: 16 }, (_, i) => i + 1); // 4x4, one channel
  it('max and average 3x3 s2 with ceil mode', () => {
    const attrs: PoolAttrs = { kernel: [3, 3], strides: [2, 2], ceilMode: true, padding: [0, 0, 0, 0] };
    expect([...poolRef('max', x16, [1, 4, 4, 1], attrs)]).toEqual([11, 12, 15, 16]);
    expect([...poolRef('avg', x16, [1, 4, 4, 1], attrs)]).toEqual([6, 7.5, 12, 13.5]);
  });
  it('TF SAME average excludes the padding', () => {
    const y = poolRef('avg', [1, 2, 3, 4], [1, 2, 2, 1], { kernel: [3, 3], padding: 'SAME' });
    expect([...y]).toEqual([2.5, 2.5, 2.5, 2.5]);
  });
  it('count_include_pad divides by the full padded window', () => {
    const y = poolRef('avg', [1, 2, 3, 4], [1, 2, 2, 1], { kernel: [3, 3], padding: [1, 1, 1, 1], countIncludePad: true });
    expect([...y]).toEqual([10 / 9, 10 / 9, 10 / 9, 10 / 9]);
  });
});

describe('pooling: bad input raises an error naming the op and shapes', () => {
  it('rejects a non-4-D input', () => {
    expect(() => poolShape('max', [4, 4, 3], { kernel: [2, 2] })).toThrow(/maxPool.*\[4,4,3\]/);
  });
  it('rejects a window larger than the input', () => {
    expect(() => poolShape('avg', [1, 3, 3, 1], { kernel: [5, 5] })).toThrow(/avgPool.*5x5.*3x3/);
  });
  it('rejects an output of the wrong shape', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 6, 6, 2]);
    const y = empty(rt, [1, 3, 3, 2]);
    expect(() => pool('max', x, { kernel: [2, 2] }, { tensor: y, channelOffset: 0 })).toThrow(/maxPool.*\[1,3,3,2\]/);
  });
  it('rejects countIncludePad on max pooling', () => {
    expect(() => poolShape('max', [1, 4, 4, 1], { kernel: [2, 2], countIncludePad: true })).toThrow(/maxPool/);
  });
});
