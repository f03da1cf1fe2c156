// The ONNX export round trip, with ONNX Runtime (onnxruntime-node) as the independent reference:
// the exported file, run by ORT on the NCHW image, must give the engine's own outputs (Model.predict
// on the NHWC image) to 1e-4. Covered: a thin Inception v3 with nontrivial moving statistics at
// batch 2 (the file is exported at batch 1: the batch is dynamic), a model fine-tuned here with a
// new head exported through `incept export`, TF's MobileNet frozen graph on a fixture photo (with
// ../shared), and the refusal of ops with no ONNX mapping. The exported file also loads back through
// the engine's own ONNX importer.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportModel, parseExportArgs } from '../src/cli/export.ts';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { nhwcToNchw } from '../src/export/onnx-emitter.ts';
import { exportOnnx } from '../src/export/onnx-export.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/ir.ts';
import { Model } from '../src/graph/model.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { Parameter } from '../src/graph/params.ts';
import { decodeJpegIfast } from '../src/image/jpeg.ts';
import { preprocessMeanStd } from '../src/image/preprocess.ts';
import { loadModel, loadModelBytes } from '../src/import/load-model.ts';
import { readDataset, splitDataset } from '../src/train/dataset.ts';
import { fineTune } from '../src/train/finetune.ts';
import { randomInception, replaceHead } from '../src/train/head.ts';
import { SHARED_DIR, fixturesPresent, needsTitle, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const THIN = { inputSize: 75, depthMultiplier: 0.1, auxLogits: false } as const;
const TOL = 1e-4;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-onnx-export-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** max |a - b| / max |b|: the relative error of a whole output, reported and held under TOL. */
function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

/** ORT's outputs for an NHWC batch, fed as the NCHW tensor the file declares. */
async function runOrt(bytes: Uint8Array, inputName: string, nhwc: Float32Array, [n, h, w, c]: number[]): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ [inputName]: new ort.Tensor('float32', nhwcToNchw(nhwc, [n, h, w, c]), [n, c, h, w]) });
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
}

/** Compares every engine output with ORT's; returns the relative errors by output name. */
function compare(engine: Record<string, Float32Array>, onnx: Record<string, Float32Array>, what: string): Record<string, number> {
  const errors: Record<string, number> = {};
  for (const [name, expected] of Object.entries(engine)) {
    expect(onnx[name], `${what}: ORT output ${name}`).toBeDefined();
    errors[name] = relError(onnx[name], expected);
    expect(errors[name], `${what}: ${name}`).toBeLessThan(TOL);
  }
  console.log(`${what}: max relative error ${JSON.stringify(errors)}`);
  return errors;
}

/** A thin Inception v3 whose batchnorms have moving statistics and offsets away from 0 / 1. */
function thinInception(batch: number): Graph {
  const g = inceptionV3({ ...THIN, numClasses: 7, seed: 3, batch });
  let k = 0;
  for (const p of g.params.values()) {
    if (p.name.endsWith('moving_variance')) p.data = randomArray(p.size, 50 + k++, 0.5, 2);
    else if (p.name.endsWith('moving_mean') || p.name.endsWith('beta')) p.data = randomArray(p.size, 50 + k++, -0.3, 0.3);
  }
  return g;
}

describe('ONNX export vs ONNX Runtime', () => {
  it('thin Inception v3 (batch 2 through a file exported at batch 1): logits and probabilities to 1e-4', async () => {
    const one = thinInception(1);
    const bytes = exportOnnx(one);
    const x = randomArray(2 * 75 * 75 * 3, 11);
    const model = new Model(await getRuntime(), (b) => (b === 1 ? one : shareParams(thinInception(b), one)));
    const engine = await model.predict(x);
    expect(Object.keys(engine)).toEqual(one.outputs);
    compare(engine, await runOrt(bytes, 'input', x, [2, 75, 75, 3]), 'thin Inception v3');
    // The engine's own ONNX importer reads the file back (an NHWC input again) and agrees.
    const back = await loadModelBytes(bytes, 'thin.onnx');
    const again = await back.model.predict(x, { outputs: one.outputs });
    for (const v of one.outputs) expect(relError(again[v], engine[v]), `re-imported ${v}`).toBeLessThan(TOL);
    back.model.dispose();
    model.dispose();
  });

  it('a model fine-tuned here with a new head, exported by `incept export`', async () => {
    const ds = generateLesionDataset({ count: 8, size: 80, seed: 5, dir: join(dir, 'data'), validationFraction: 0.25 });
    const all = readDataset(ds.manifest);
    const tm = await replaceHead(randomInception({ ...THIN, seed: 2 }), { head: 'sigmoid', classes: all.classes });
    const runDir = join(dir, 'run');
    const noAugment = { flipLeftRight: 0, color: 'none', areaRange: [1, 1], aspectRatioRange: [1, 1] } as const;
    await fineTune(tm, { train: splitDataset(all).train }, { epochs: 2, batch: 6, learningRate: 0.01, freeze: { kind: 'from', layer: 'Mixed_7c' }, augment: noAugment, workers: 0, runDir });
    const saved = join(runDir, 'model.safetensors');
    const out = join(dir, 'finetuned.onnx');
    const lines = exportModel(parseExportArgs([saved, '--onnx', out]));
    expect(lines[0]).toMatch(/finetuned\.onnx: ONNX opset 13, \d+ bytes, input 'input' \[N,3,75,75\]/);
    const loaded = await loadModel(saved);
    const x = randomArray(3 * 75 * 75 * 3, 12);
    const engine = await loaded.model.predict(x);
    compare(engine, await runOrt(readFileSync(out), 'input', x, [3, 75, 75, 3]), 'fine-tuned thin Inception v3 (sigmoid head)');
    loaded.model.dispose();
  });

  const MOBILENET = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
  const PHOTO = join(SHARED_DIR, 'fixtures/tf-mobilenet/test/Lemon');
  const present = fixturesPresent([MOBILENET, PHOTO]);
  it.skipIf(!present)(needsTitle('TF MobileNet v1 0.25/128 frozen graph on a fixture photo', [MOBILENET, PHOTO]), async () => {
    const outputs = ['MobilenetV1/Predictions/Reshape', 'MobilenetV1/Predictions/Reshape_1']; // logits, probabilities
    const loaded = await loadModel(MOBILENET, { outputs });
    const photo = join(PHOTO, readdirFirstJpeg(PHOTO));
    const x = preprocessMeanStd(decodeJpegIfast(readFileSync(photo), photo), 128, { mean: 127.5, std: 127.5 });
    const engine = await loaded.model.predict(x);
    expect(Object.keys(engine).sort()).toEqual(outputs);
    const bytes = exportOnnx(loaded.model.graph);
    compare(engine, await runOrt(bytes, loaded.model.graph.inputs[0].name, x, [1, 128, 128, 3]), 'MobileNet frozen graph');
    loaded.model.dispose();
  });

  it('refuses ops with no ONNX mapping, naming every such node at once', () => {
    const g = new Graph('odd');
    g.addInput('x', [1, 4, 4, 2]);
    g.addParam(new Parameter('w', [3, 3, 2, 2], { kind: 'zeros' }));
    const attrs = { strides: [1, 1], dilations: [1, 1], padding: 'SAME', groups: 1, outShape: [4, 4] } as const;
    g.addNode('up_a', 'conv_transpose', ['x', 'w'], { ...attrs, strides: [1, 1], dilations: [1, 1] });
    g.addNode('relu', 'relu', ['up_a'], {});
    g.addNode('up_b', 'conv_transpose', ['relu', 'w'], { ...attrs, strides: [1, 1], dilations: [1, 1] });
    g.addOutput('up_b');
    expect(() => exportOnnx(g)).toThrow(/ONNX export of odd: no ONNX mapping for 2 node\(s\): up_a \(conv_transpose\), up_b \(conv_transpose\)/);
    expect(() => exportOnnx(g, { opset: 12 })).toThrow(/opset 12 is not supported \(13\.\.17\)/);
    expect(() => exportOnnx(g, { outputs: ['nothing'] })).toThrow(/no end point 'nothing'/);
  });
});

/** A graph built at another batch, given the parameter data of `from` (same names and shapes). */
function shareParams(g: Graph, from: Graph): Graph {
  for (const p of g.params.values()) p.data = from.param(p.name).data;
  return g;
}

function readdirFirstJpeg(folder: string): string {
  return readdirSync(folder).filter((f) => f.endsWith('.jpg')).sort()[0];
}
