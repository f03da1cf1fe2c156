// Real PyTorch exports (../shared/conformance/torchvision-onnx: torchvision 0.14's exporter, opset
// 13, random weights with measured batchnorm statistics) loaded as a user loads them (loadModel)
// and run on two images: the logits must match PyTorch's own (relative L2 error <= 1e-4) with the
// same top-1 class. The graph is built at batch 1 and run at batch 2 (the exports' dynamic batch).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { loadModel } from '../src/import/load-model.ts';
import { nchwToNhwcHost } from '../src/kernels/transpose.ts';
import { SHARED_DIR, sharedMissingMessage } from './helpers.ts';

afterAll(closeRuntime);

const DIR = join(SHARED_DIR, 'conformance', 'torchvision-onnx');
const MODELS = ['squeezenet1_1', 'mobilenet_v3_small', 'shufflenet_v2_x1_0', 'mnasnet0_5', 'mobilenet_v2', 'googlenet'];
const CLASSES = 1000;

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function argmax(v: Float32Array, row: number): number {
  let k = 0;
  for (let i = 1; i < CLASSES; i++) if (v[row * CLASSES + i] > v[row * CLASSES + k]) k = i;
  return k;
}

describe('torchvision ONNX exports reproduce PyTorch (../shared/conformance/torchvision-onnx)', () => {
  if (!existsSync(DIR)) {
    it.skip(sharedMissingMessage('the torchvision ONNX exports'), () => {});
    return;
  }
  for (const name of MODELS) {
    it(name, { timeout: 180_000 }, async () => {
      const folder = join(DIR, name);
      const expected = f32(join(folder, 'logits.f32'));
      const images = expected.length / CLASSES;
      const nchw = f32(join(folder, 'input.f32'));
      const side = Math.round(Math.sqrt(nchw.length / images / 3));
      const { model, output } = await loadModel(join(folder, 'model.onnx'));
      try {
        expect(model.graph.inputs[0].shape).toEqual([1, side, side, 3]);
        const x = nchwToNhwcHost(nchw, [images, 3, side, side]).data;
        const got = (await model.predict(x, { outputs: [output] }))[output];
        expect(got.length).toBe(expected.length);
        let err = 0;
        let ref = 0;
        for (let i = 0; i < expected.length; i++) {
          err += (got[i] - expected[i]) ** 2;
          ref += expected[i] ** 2;
        }
        expect(Math.sqrt(err / ref), `${name}: relative L2 error of the logits`).toBeLessThanOrEqual(1e-4);
        for (let r = 0; r < images; r++) expect(argmax(got, r), `${name}: top-1 of image ${r}`).toBe(argmax(expected, r));
      } finally {
        model.dispose();
      }
    });
  }
});
