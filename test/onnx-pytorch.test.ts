// ONNX as PyTorch and tf2onnx write it, on small models encoded here and checked against float64
// references computed from the ops' definitions in this file: shape subgraphs folded at import
// (at two batch sizes), squeeze-excitation with HardSigmoid / HardSwish, reflect Pad + average
// pooling, channel Split, nearest and bilinear Resize, Tile and Expand, an NHWC (tf2onnx) input, and weights in an external data file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { compile } from '../src/graph/executor.ts';
import { importOnnx, onnxModelBuilder } from '../src/import/onnx-model.ts';
import { nchwToNhwcHost, nhwcToNchwHost } from '../src/kernels/transpose.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const root = protobuf.loadSync(fileURLToPath(new URL('../src/import/onnx.proto', import.meta.url)));
const ModelProto = root.lookupType('incept.onnx.ModelProto');
const FLOAT = 1;
const INT64 = 7;

const node = (opType: string, input: string[], output: string[], attribute: object[] = []) => ({ opType, input, output, name: `${opType}_${output[0]}`, attribute });
const intsAttr = (name: string, ints: number[]) => ({ name, type: 7, ints });
const intAttr = (name: string, i: number) => ({ name, type: 2, i });
const strAttr = (name: string, s: string) => ({ name, type: 3, s: new TextEncoder().encode(s) });
const floatInit = (name: string, dims: number[], v: ArrayLike<number>) => ({ name, dims, dataType: FLOAT, rawData: new Uint8Array(Float32Array.from(v).buffer) });
const intInit = (name: string, v: number[]) => ({ name, dims: [v.length], dataType: INT64, rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer) });
const info = (name: string, dims: (number | string)[]) => ({
  name,
  type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});
function model(graph: { node: object[]; initializer: object[]; input: object[]; output: object[] }, opset = 13): Uint8Array {
  const msg = { irVersion: 8, opsetImport: [{ domain: '', version: opset }], graph: { name: 'pt', ...graph } };
  return ModelProto.encode(ModelProto.fromObject(msg)).finish();
}

async function run(bytes: Uint8Array | string, x: Float32Array, batch: number): Promise<Float32Array> {
  const g = onnxModelBuilder(bytes)(batch);
  const plan = compile(await getRuntime(), g);
  try {
    return Object.values(await plan.runToHost(x))[0];
  } finally {
    plan.destroy();
  }
}

describe('ONNX as PyTorch writes it', () => {
  it('folds the Shape -> Gather -> Unsqueeze -> Concat -> Reshape flatten of a dynamic batch', async () => {
    // x.view(x.size(0), -1) on [N, 4, 3, 2], as torch.onnx writes it, then a ReLU.
    const bytes = model({
      node: [
        node('Shape', ['x'], ['s']),
        node('Gather', ['s', 'zero'], ['n'], [intAttr('axis', 0)]),
        node('Unsqueeze', ['n', 'axes0'], ['n1']),
        node('Concat', ['n1', 'minus1'], ['spec'], [intAttr('axis', 0)]),
        node('Reshape', ['x', 'spec'], ['flat']),
        node('Relu', ['flat'], ['y']),
      ],
      initializer: [{ name: 'zero', dims: [], dataType: INT64, rawData: new Uint8Array(BigInt64Array.of(0n).buffer) }, intInit('axes0', [0]), intInit('minus1', [-1])],
      input: [info('x', ['batch', 4, 3, 2])],
      output: [info('y', ['batch', 24])],
    });
    for (const n of [1, 3]) {
      const nchw = randomArray(n * 24, 5 + n);
      const got = await run(bytes, nchwToNhwcHost(nchw, [n, 4, 3, 2]).data, n);
      expectClose(got, Float64Array.from(nchw, (v) => Math.max(v, 0)), { rtol: 0, atol: 0 }, `flatten at batch ${n}`);
    }
  });

  it('runs squeeze-excitation (HardSigmoid gate times the map) and HardSwish', async () => {
    const [n, c, h, w] = [2, 5, 3, 4];
    const bytes = model({
      node: [
        node('GlobalAveragePool', ['x'], ['m']),
        node('HardSigmoid', ['m'], ['gate'], [{ name: 'alpha', type: 1, f: 1 / 6 }]),
        node('Mul', ['x', 'gate'], ['se']),
        node('HardSwish', ['se'], ['y']),
      ],
      initializer: [],
      input: [info('x', [n, c, h, w])],
      output: [info('y', [n, c, h, w])],
    });
    const x = randomArray(n * c * h * w, 11, -5, 5);
    const want = new Float64Array(x.length);
    const hs = (v: number, a: number) => Math.min(1, Math.max(0, a * v + 0.5));
    for (let i = 0; i < n * c; i++) {
      let mean = 0;
      for (let k = 0; k < h * w; k++) mean += x[i * h * w + k] / (h * w);
      for (let k = 0; k < h * w; k++) {
        const se = x[i * h * w + k] * hs(mean, 1 / 6);
        want[i * h * w + k] = se * hs(se, 1 / 6);
      }
    }
    const got = await run(bytes, nchwToNhwcHost(x, [n, c, h, w]).data, n);
    expectClose(nhwcToNchwHost(got, [n, h, w, c]).data, want, { rtol: 1e-5, atol: 1e-6 }, 'SE + HardSwish');
  });

  it('reflect-pads, average-pools with the padding counted, and splits channels', async () => {
    const [n, c, h, w] = [1, 4, 5, 6];
    const bytes = model({
      node: [
        node('Pad', ['x', 'pads'], ['p'], [strAttr('mode', 'reflect')]),
        node('AveragePool', ['p'], ['a'], [intsAttr('kernel_shape', [3, 3]), intsAttr('pads', [1, 1, 1, 1]), intAttr('count_include_pad', 1)]),
        node('Split', ['a', 'split'], ['s0', 's1'], [intAttr('axis', 1)]),
        node('Sub', ['s1', 's0'], ['y']),
      ],
      initializer: [intInit('pads', [0, 0, 1, 2, 0, 0, 1, 2]), intInit('split', [2, 2])],
      input: [info('x', [n, c, h, w])],
      output: [info('y', [n, 2, h + 2, w + 4])],
    });
    const x = randomArray(n * c * h * w, 3);
    const [ph, pw] = [h + 2, w + 4];
    const reflect = (i: number, len: number) => (i < 0 ? -i : i >= len ? 2 * (len - 1) - i : i);
    const padded = (ch: number, y: number, xx: number) => x[(ch * h + reflect(y - 1, h)) * w + reflect(xx - 2, w)];
    const avg = (ch: number, y: number, xx: number) => {
      let s = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const [yy, xq] = [y + dy, xx + dx];
          if (yy >= 0 && yy < ph && xq >= 0 && xq < pw) s += padded(ch, yy, xq);
        }
      return s / 9;
    };
    const want = new Float64Array(2 * ph * pw);
    for (let ch = 0; ch < 2; ch++) for (let y = 0; y < ph; y++) for (let xx = 0; xx < pw; xx++) want[(ch * ph + y) * pw + xx] = avg(ch + 2, y, xx) - avg(ch, y, xx);
    const got = await run(bytes, nchwToNhwcHost(x, [n, c, h, w]).data, n);
    expectClose(nhwcToNchwHost(got, [n, ph, pw, 2]).data, want, { rtol: 1e-5, atol: 1e-6 }, 'pad + pool + split');
  });

  it('resizes nearest by whole-number factors (F.interpolate(scale_factor=(2, 3)) as exported)', async () => {
    const [n, c, h, w] = [2, 3, 4, 5];
    const bytes = model({
      node: [node('Resize', ['x', '', 'scales'], ['y'], [strAttr('mode', 'nearest'), strAttr('coordinate_transformation_mode', 'asymmetric'), strAttr('nearest_mode', 'floor')])],
      initializer: [floatInit('scales', [4], [1, 1, 2, 3])],
      input: [info('x', [n, c, h, w])],
      output: [info('y', [n, c, 2 * h, 3 * w])],
    });
    const x = randomArray(n * c * h * w, 21);
    const [oh, ow] = [2 * h, 3 * w];
    const want = new Float64Array(n * c * oh * ow);
    for (let p = 0; p < n * c; p++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) want[(p * oh + i) * ow + j] = x[(p * h + Math.floor(i / 2)) * w + Math.floor(j / 3)];
    const got = await run(bytes, nchwToNhwcHost(x, [n, c, h, w]).data, n);
    expectClose(nhwcToNchwHost(got, [n, oh, ow, c]).data, want, { rtol: 0, atol: 0 }, 'nearest resize');
  });

  it('resizes bilinearly to given sizes (F.interpolate(mode="bilinear") as exported: half_pixel)', async () => {
    const [n, c, h, w] = [1, 2, 3, 4];
    const [oh, ow] = [7, 6];
    const bytes = model({
      node: [node('Resize', ['x', '', '', 'sizes'], ['y'], [strAttr('mode', 'linear'), strAttr('coordinate_transformation_mode', 'pytorch_half_pixel')])],
      initializer: [intInit('sizes', [n, c, oh, ow])],
      input: [info('x', [n, c, h, w])],
      output: [info('y', [n, c, oh, ow])],
    });
    const x = randomArray(n * c * h * w, 27);
    const src = (o: number, inLen: number, outLen: number) => Math.min(Math.max((o + 0.5) * (inLen / outLen) - 0.5, 0), inLen - 1);
    const want = new Float64Array(n * c * oh * ow);
    for (let p = 0; p < c; p++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          const [y, xx] = [src(i, h, oh), src(j, w, ow)];
          const [y0, x0] = [Math.floor(y), Math.floor(xx)];
          const [y1, x1] = [Math.min(y0 + 1, h - 1), Math.min(x0 + 1, w - 1)];
          const at = (r: number, q: number) => x[(p * h + r) * w + q];
          const top = at(y0, x0) * (1 - (xx - x0)) + at(y0, x1) * (xx - x0);
          const bottom = at(y1, x0) * (1 - (xx - x0)) + at(y1, x1) * (xx - x0);
          want[(p * oh + i) * ow + j] = top * (1 - (y - y0)) + bottom * (y - y0);
        }
    const got = await run(bytes, nchwToNhwcHost(x, [n, c, h, w]).data, n);
    expectClose(nhwcToNchwHost(got, [n, oh, ow, c]).data, want, { rtol: 1e-5, atol: 1e-6 }, 'bilinear resize');
  });

  it('tiles along the channels and the width, and expands a [C, 1] constant', async () => {
    const [n, c, h, w] = [1, 2, 3, 4];
    const bytes = model({
      node: [node('Tile', ['x', 'reps'], ['t']), node('Expand', ['t', 'shape'], ['y'])],
      initializer: [intInit('reps', [1, 2, 1, 2]), intInit('shape', [2, 1, 1, 1, 1])],
      input: [info('x', [n, c, h, w])],
      output: [info('y', [2, n, 2 * c, h, 2 * w])],
    });
    const x = randomArray(n * c * h * w, 23);
    const [oc, ow] = [2 * c, 2 * w];
    const one = new Float64Array(oc * h * ow);
    for (let k = 0; k < oc; k++) for (let i = 0; i < h; i++) for (let j = 0; j < ow; j++) one[(k * h + i) * ow + j] = x[((k % c) * h + i) * w + (j % w)];
    const got = await run(bytes, nchwToNhwcHost(x, [n, c, h, w]).data, n);
    expectClose(got, Float64Array.from([...one, ...one]), { rtol: 0, atol: 0 }, 'tile + expand');
  });

  it('feeds an NHWC (tf2onnx) input as it is, without a transpose', () => {
    const bytes = model({
      node: [node('Transpose', ['x'], ['t'], [intsAttr('perm', [0, 3, 1, 2])]), node('Relu', ['t'], ['y'])],
      initializer: [],
      input: [info('x', [1, 6, 5, 3])],
      output: [info('y', [1, 3, 6, 5])],
    });
    const g = importOnnx(bytes);
    expect(g.inputs[0].shape).toEqual([1, 6, 5, 3]);
    expect(g.nodes.map((nd) => nd.op)).toEqual(['relu']);
  });

  it('reads weights from an external data file beside the model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-onnx-ext-'));
    const scale = Float32Array.of(2, -1, 0.5);
    const shift = Float32Array.of(0.25, 1, -3);
    const data = new Uint8Array(64 + 12);
    data.set(new Uint8Array(shift.buffer), 0);
    data.set(new Uint8Array(scale.buffer), 64); // aligned as ONNX's writer aligns
    writeFileSync(join(dir, 'model.onnx.data'), data);
    const external = (name: string, offset: number) => ({
      name,
      dims: [1, 3, 1, 1],
      dataType: FLOAT,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'model.onnx.data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: '12' },
      ],
    });
    const bytes = model({
      node: [node('Mul', ['x', 'scale'], ['m']), node('Add', ['m', 'shift'], ['y'])],
      initializer: [external('scale', 64), external('shift', 0)],
      input: [info('x', [2, 3, 2, 2])],
      output: [info('y', [2, 3, 2, 2])],
    });
    writeFileSync(join(dir, 'model.onnx'), bytes);
    const x = randomArray(24, 9);
    const want = Float64Array.from(x, (v, i) => v * scale[Math.floor(i / 4) % 3] + shift[Math.floor(i / 4) % 3]);
    const got = await run(join(dir, 'model.onnx'), nchwToNhwcHost(x, [2, 3, 2, 2]).data, 2);
    expectClose(nhwcToNchwHost(got, [2, 2, 2, 3]).data, want, { rtol: 1e-6, atol: 1e-6 }, 'external data');
    expect(() => importOnnx(bytes)).toThrow(/external data 'model.onnx.data' needs the model's path/);
  });
});
