import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, sizeOf, upload } from '../src/gpu/tensor.ts';
import {
  hwioToOihw, hwioToOihwHost, nchwToNhwc, nchwToNhwcHost, nhwcToNchw, nhwcToNchwHost, oihwToHwio, oihwToHwioHost,
  transpose, transposeHost, transposeRef, transposeShape,
} from '../src/kernels/transpose.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

async function check(shape: Shape, perm: number[] | undefined, seed: number) {
  const rt = await getRuntime();
  const data = randomArray(sizeOf(shape), seed);
  const y = transpose(upload(rt, data, shape), perm);
  expect(y.shape).toEqual(transposeShape(shape, perm));
  expectClose(await y.read(), transposeRef(data, shape, perm), { rtol: 0, atol: 0 }, `transpose ${JSON.stringify(shape)} ${JSON.stringify(perm)}`);
}

function randomPerm(r: () => number, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

describe('transpose matches the CPU reference', () => {
  it('tiled path: 2-D and NHWC<->NCHW with sizes that are not multiples of the tile', async () => {
    await check([37, 21], [1, 0], 1);
    await check([2, 17, 19, 5], [0, 3, 1, 2], 2);
    await check([3, 5, 19, 17], [0, 2, 3, 1], 3);
    await check([1, 40], [1, 0], 4); // a size-1 dim disappears: plain copy
  });
  it('strided path: default (reversed) perm, identity, rank 6 and a rank-7 perm that coalesces', async () => {
    await check([2, 3, 4], undefined, 5);
    await check([3, 4, 5], [0, 1, 2], 6);
    await check([2, 3, 2, 3, 2, 3], [5, 3, 1, 0, 2, 4], 7);
    await check([2, 2, 3, 2, 3, 1, 2], [3, 4, 0, 1, 2, 5, 6], 8);
    await check([], [], 9);
  });
  it('random shapes and perms', async () => {
    const r = rng(11);
    for (let t = 0; t < 16; t++) {
      const rank = 1 + Math.floor(r() * 6);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
      await check(shape, randomPerm(r, rank), 50 + t);
    }
  });
  it('moves int32 words unchanged', async () => {
    const rt = await getRuntime();
    const data = Int32Array.from({ length: 35 }, (_, i) => i * 7 - 100);
    const y = transpose(upload(rt, data, [5, 7]), [1, 0]);
    expect(y.dtype).toBe('int32');
    expect(Array.from(await y.readInt32())).toEqual(Array.from(transposeRef(data, [5, 7], [1, 0])));
  });
});

describe('layout helpers', () => {
  it('GPU NHWC<->NCHW and HWIO<->OIHW round trip and agree with the host versions', async () => {
    const rt = await getRuntime();
    const xs = [2, 5, 3, 7];
    const x = randomArray(sizeOf(xs), 21);
    const nchw = nhwcToNchw(upload(rt, x, xs));
    expect(nchw.shape).toEqual([2, 7, 5, 3]);
    const host = nhwcToNchwHost(x, xs);
    expect(host.shape).toEqual([2, 7, 5, 3]);
    expectClose(await nchw.read(), host.data, { rtol: 0, atol: 0 }, 'nhwcToNchw');
    expectClose(await nchwToNhwc(nchw).read(), x, { rtol: 0, atol: 0 }, 'nchwToNhwc');
    expectClose(nchwToNhwcHost(host.data, host.shape).data, x, { rtol: 0, atol: 0 }, 'nchwToNhwcHost');

    const ws = [3, 5, 4, 6]; // HWIO
    const w = randomArray(sizeOf(ws), 22);
    const oihw = hwioToOihw(upload(rt, w, ws));
    expect(oihw.shape).toEqual([6, 4, 3, 5]);
    const wHost = hwioToOihwHost(w, ws);
    expectClose(await oihw.read(), wHost.data, { rtol: 0, atol: 0 }, 'hwioToOihw');
    expectClose(await oihwToHwio(oihw).read(), w, { rtol: 0, atol: 0 }, 'oihwToHwio');
    expect(oihwToHwioHost(wHost.data, wHost.shape).shape).toEqual(ws);
  });

  it('HWIO -> OIHW puts w[h][w][i][o] at [o][i][h][w]', () => {
    const ws = [2, 3, 4, 5];
    const w = Float64Array.from({ length: sizeOf(ws) }, (_, k) => k);
    const { data } = hwioToOihwHost(w, ws);
    const [H, W, I, O] = ws;
    for (const [h, x, i, o] of [[1, 2, 3, 4], [0, 1, 2, 3], [1, 0, 0, 2]]) {
      expect(data[((o * I + i) * H + h) * W + x]).toBe(((h * W + x) * I + i) * O + o);
    }
  });

  it('host transpose keeps the array type (int64 initializers too)', () => {
    const { data } = transposeHost(BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n]), [2, 3], [1, 0]);
    expect(data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(data)).toEqual([1n, 4n, 2n, 5n, 3n, 6n]);
  });
});

describe('transpose errors', () => {
  it('names the op, the perm and the shape', () => {
    expect(() => transposeShape([2, 3], [0, 0])).toThrow(/transpose: \[0,0\] is not a permutation of the 2 dims of \[2,3\]/);
    expect(() => transposeShape([2, 3], [1, 0, 2])).toThrow(/not a permutation/);
    expect(() => nhwcToNchwHost(new Float32Array(6), [2, 3])).toThrow(/nhwcToNchw: expects a rank-4 tensor, got \[2,3\]/);
  });
});
