// A tiny network written by PyTorch's own ONNX exporter at opsets 9, 13 and 17
// (test/fixtures/pytorch-onnx, see its README): imported, compiled and run at batch 2 on a graph
// built at batch 1. Opsets 13 and 17 must reproduce PyTorch's logits; opset 9's Upsample means
// something else than PyTorch's interpolation, so there ONNX Runtime's output is the reference.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { loadModel } from '../src/import/load-model.ts';
import { nchwToNhwcHost } from '../src/kernels/transpose.ts';

afterAll(closeRuntime);

const DIR = fileURLToPath(new URL('./fixtures/pytorch-onnx/', import.meta.url));

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function relativeL2(got: Float32Array, want: Float32Array): number {
  let e = 0;
  let r = 0;
  for (let i = 0; i < want.length; i++) {
    e += (got[i] - want[i]) ** 2;
    r += want[i] ** 2;
  }
  return Math.sqrt(e / r);
}

async function engineLogits(folder: string, x: Float32Array): Promise<Float32Array> {
  const { model, output } = await loadModel(`${folder}/model.onnx`);
  try {
    return (await model.predict(nchwToNhwcHost(x, [2, 3, 12, 12]).data, { outputs: [output] }))[output];
  } finally {
    model.dispose();
  }
}

describe('PyTorch exports of pad, SiLU, SE, hardswish, interpolate, channel shuffle', () => {
  for (const opset of [13, 17]) {
    it(`opset ${opset} reproduces PyTorch's logits`, async () => {
      const folder = `${DIR}opset${opset}`;
      const got = await engineLogits(folder, f32(`${folder}/input.f32`));
      expect(relativeL2(got, f32(`${folder}/output.f32`))).toBeLessThanOrEqual(1e-4);
    });
  }
  it("opset 9 (Upsample) reproduces ONNX Runtime's logits", async () => {
    const folder = `${DIR}opset9`;
    const x = f32(`${folder}/input.f32`);
    const session = await ort.InferenceSession.create(`${folder}/model.onnx`);
    const ref = (await session.run({ input: new ort.Tensor('float32', x, [2, 3, 12, 12]) })).logits.data as Float32Array;
    const got = await engineLogits(folder, x);
    expect(relativeL2(got, ref)).toBeLessThanOrEqual(1e-4);
    // PyTorch's own bilinear output differs from what the opset 9 model computes (README).
    expect(relativeL2(ref, f32(`${folder}/output.f32`))).toBeGreaterThan(1e-3);
  });
});
