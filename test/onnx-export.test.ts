// The ONNX export round trip, with ONNX Runtime (onnxruntime-node) as the independent reference:
// the exported file, run by ORT on the NCHW image, must give the engine's own outputs (Model.predict
// on the NHWC image) to 1e-4. Covered: a thin Inception v3 with nontrivial moving statistics at
// batch 2 (the file is exported at batch 1: the batch is dynamic), a model fine-tuned here with a
// new head exported through `incept export`, TF's MobileNet frozen graph on a fixture photo (with
// ../shared), an op zoo with every layout case (including a 4-D NCHW output), imported ONNX and TF.js
// graphs exported again, the refusal of ops with no ONNX mapping, and the command's errors. The
// exported Inception file also loads back through the engine's own ONNX importer.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportModel, parseExportArgs } from '../src/cli/export.ts';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { nhwcToNchw } from '../src/export/onnx-emitter.ts';
import { exportOnnx } from '../src/export/onnx-export.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type ConvNodeAttrs, Graph } from '../src/graph/ir.ts';
import { Model } from '../src/graph/model.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { Parameter } from '../src/graph/params.ts';
import { decodeJpegIfast } from '../src/image/jpeg.ts';
import { preprocessMeanStd } from '../src/image/preprocess.ts';
import { loadModel, loadModelBytes } from '../src/import/load-model.ts';
import { decodeModel } from '../src/import/onnx-proto.ts';
import { readDataset, splitDataset } from '../src/train/dataset.ts';
import type { AugmentOptions } from '../src/train/augment.ts';
import { fineTune } from '../src/train/finetune.ts';
import { randomInception, replaceHead } from '../src/train/head.ts';
import { fixturesPresent, needsTitle, randomArray, relError, SHARED_DIR } from './helpers.ts';

afterAll(closeRuntime);

const BIN = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
const THIN = { inputSize: 75, depthMultiplier: 0.1, auxLogits: false } as const;
const TOL = 1e-4;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-onnx-export-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));


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
    const noAugment: AugmentOptions = { flipLeftRight: 0, color: 'none', areaRange: [1, 1], aspectRatioRange: [1, 1] };
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

  it('every exported op with its own layout handling (pools, pads, reductions, transpose, flatten, matmul, 4-D output)', async () => {
    const one = opZoo(1);
    const model = new Model(await getRuntime(), (b) => (b === 1 ? one : shareParams(opZoo(b), one)));
    const x = randomArray(2 * 9 * 10 * 4, 5);
    const engine = await model.predict(x);
    const bytes = exportOnnx(one);
    const file = decodeModel(bytes);
    expect(file.opsetImport).toEqual([{ domain: '', version: 13 }]);
    expect(file.graph.inputs.map((i) => [i.name, i.tensor?.shape])).toEqual([['image', ['N', 4, 9, 10]]]);
    expect(file.graph.outputs.map((o) => [o.name, o.tensor?.shape])).toEqual([
      ['logp', ['N', 23]],
      ['chsoftmax', ['N', 6, 6, 12]],
      ['up', ['N', 4, 12, 12]],
    ]);
    expect(file.graph.initializers.find((t) => t.name === 'conv/w')?.dims).toEqual([6, 2, 3, 3]); // OIHW
    expect(decodeModel(exportOnnx(one, { fixedBatch: true, opset: 17 })).graph.inputs[0].tensor?.shape).toEqual([1, 4, 9, 10]);
    const onnx = await runOrt(bytes, 'image', x, [2, 9, 10, 4]);
    // A rank-4 output is NCHW in the file: back to NHWC to compare.
    for (const v of ['chsoftmax', 'up']) onnx[v] = nchwToNhwc(onnx[v], model.shapeOf(v, 2));
    compare(engine, onnx, 'op zoo');
    model.dispose();
  });

  const TV = join(SHARED_DIR, 'conformance/torchvision-onnx');
  const TFJS = join(SHARED_DIR, 'fixtures/tfjs-inception-v3/model.json');
  const imported = [join(TV, 'shufflenet_v2_x1_0/model.onnx'), join(TV, 'mobilenet_v3_small/model.onnx'), TFJS];
  const importedPresent = fixturesPresent(imported);
  it.skipIf(!importedPresent)(needsTitle('imported graphs exported again: torchvision ShuffleNet v2 and MobileNet v3 (ONNX), nsfwjs Inception v3 (TF.js)', imported), async () => {
    for (const file of imported) {
      const loaded = await loadModel(file);
      const g = loaded.model.graph;
      const shape = [...g.inputs[0].shape];
      const x = randomArray(shape.reduce((a, b) => a * b, 1), 13);
      const engine = await loaded.model.predict(x);
      compare(engine, await runOrt(exportOnnx(g), g.inputs[0].name, x, shape), file.split('/').slice(-2).join('/'));
      loaded.model.dispose();
    }
  });

  it('refuses ops with no ONNX mapping, naming every such node at once', () => {
    const g = new Graph('odd');
    g.addInput('x', [2, 3]);
    g.addParam(new Parameter('labels', [2], { kind: 'zeros' }));
    const loss = { logProbs: false, reduction: 'mean', ignoreIndex: null, classWeights: false } as const;
    g.addNode('loss_a', 'class_loss', ['x', 'labels'], loss);
    g.addNode('relu', 'relu', ['x'], {});
    g.addNode('loss_b', 'class_loss', ['relu', 'labels'], loss);
    g.addNode('both', 'add', ['loss_a', 'loss_b'], {});
    g.addOutput('both');
    expect(() => exportOnnx(g)).toThrow(/ONNX export of odd: no ONNX mapping for 2 node\(s\): loss_a \(class_loss\), loss_b \(class_loss\)/);
    expect(() => exportOnnx(g, { opset: 12 })).toThrow(/opset 12 is not supported \(13\.\.17\)/);
    expect(() => exportOnnx(g, { outputs: ['nothing'] })).toThrow(/no end point 'nothing'/);
  });
});

describe('incept export (arguments and errors)', () => {
  it('is a command of bin/incept.js: --help, and a mistake is one error line with status 1', () => {
    const help = spawnSync(process.execPath, [BIN, 'export', '--help'], { encoding: 'utf8', timeout: 60_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/incept export MODEL --onnx OUT\.onnx/);
    expect(help.stdout).toMatch(/--opset N/);
    const bad = spawnSync(process.execPath, [BIN, 'export', 'model.safetensors'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe('incept: error: export: --onnx OUT.onnx is required (usage: incept export MODEL --onnx OUT.onnx [--output NODE]... [--opset N] [--size HxW] [--depth-multiplier X] [--num-classes N])');
  });

  it('needs one model and --onnx; an opset past 17 or an unknown output is one clear error', () => {
    expect(() => parseExportArgs(['--onnx', 'x.onnx'])).toThrow(/export: give exactly one model \(got 0/);
    expect(() => parseExportArgs(['m.safetensors'])).toThrow(/export: --onnx OUT.onnx is required/);
    expect(() => parseExportArgs(['m.safetensors', '--onnx', 'x.onnx', '--opset', '18'])).toThrow(/--opset 18 is past 17/);
    expect(() => parseExportArgs(['m.safetensors', '--onnx', 'x.onnx', '--opset', '12'])).toThrow(/opset/);
    const o = parseExportArgs(['random:inception_v3', '--size', '75x75', '--depth-multiplier', '0.1', '--onnx', join(dir, 'r.onnx'), '--output', 'Mixed_5b']);
    expect(o).toMatchObject({ model: 'random:inception_v3', outputs: ['Mixed_5b'], opset: 13, size: [75, 75] });
    expect(exportModel(o)[0]).toMatch(/r\.onnx: ONNX opset 13, \d+ bytes, input 'input' \[N,3,75,75\], outputs 'InceptionV3\/Mixed_5b\/concat'/);
    expect(() => exportModel({ ...o, outputs: ['Mixed_9z'] })).toThrow(/random:inception_v3: .*no end point 'Mixed_9z'/);
    expect(() => exportModel({ ...o, onnx: join(dir, 'no-such-dir', 'r.onnx') })).toThrow(/no-such-dir\/r\.onnx/);
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

/** NCHW data of an NHWC `shape` back to NHWC. */
function nchwToNhwc(data: Float32Array, [n, h, w, c]: readonly number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((b * h + y) * w + x) * c + k] = data[((b * c + k) * h + y) * w + x];
  return out;
}

/** A small graph with every exported op whose layout handling differs, at `batch`. */
export function opZoo(batch: number): Graph {
  const g = new Graph('opzoo');
  let seed = 1;
  const param = (name: string, shape: number[], lo = -1, hi = 1) => {
    const p = new Parameter(name, shape, { kind: 'zeros' });
    p.data = randomArray(shape.reduce((a, b) => a * b, 1), 100 + seed++, lo, hi);
    return g.addParam(p);
  };
  const node = g.addNode.bind(g);
  g.addInput('image', [batch, 9, 10, 4]);
  // conv: groups, dilation, uneven SAME padding; batchnorm without gamma; relu6
  node('conv', 'conv2d', ['image', param('conv/w', [3, 3, 2, 6])], { strides: [2, 1], dilations: [1, 2], padding: 'SAME', groups: 2 });
  node('bn', 'batchnorm', ['conv', param('bn/beta', [6]), param('bn/mean', [6]), param('bn/var', [6], 0.5, 2)], { epsilon: 1e-3, scale: false });
  node('relu6', 'relu6', ['bn'], {});
  // pools: explicit pads with padded taps counted and ceil mode; dilated SAME max pool
  node('avg', 'avgpool', ['relu6'], { kernel: [3, 3], strides: [2, 2], padding: [1, 1, 1, 1], countIncludePad: true, ceilMode: true });
  node('max', 'maxpool', ['relu6'], { kernel: [2, 2], strides: [1, 1], padding: 'SAME', dilations: [2, 2] });
  node('pad', 'pad', ['max'], { pads: [0, 1, 0, 0, 0, 0, 2, 0], mode: 'constant', value: 0.5 });
  // channel-wise binary ops against [C] and [1, 1, C] parameters; a rank-4 softmax over channels
  node('sub', 'sub', ['pad', param('sub/c', [6])], {});
  node('mul', 'mul', ['sub', param('mul/c', [1, 1, 6])], {});
  node('chsoftmax', 'softmax', ['mul'], { axis: 3 });
  // a reduction whose kept axes change order under NCHW (mean over H: [N, W, C]), then over W
  node('meanH', 'mean', ['mul'], { axes: [1], keepDims: false });
  node('sumW', 'sum', ['meanH'], { axes: [1], keepDims: false });
  // transpose of a map, flatten in NHWC order, matmul, bias
  node('swapHW', 'transpose', ['avg'], { perm: [0, 2, 1, 3] });
  node('flat', 'reshape', ['swapHW'], { shape: [batch, -1] });
  const k = g.shapeOf('flat')[1];
  node('fc', 'matmul', ['flat', param('fc/w', [5, k])], { transA: false, transB: true });
  node('fcb', 'bias_add', ['fc', param('fc/b', [5])], {});
  node('gmax', 'globalmaxpool', ['relu6'], { keepDims: false });
  node('gavg', 'globalavgpool', ['avg'], { keepDims: true });
  node('gavgflat', 'squeeze', ['gavg'], { axes: [1, 2] });
  node('cat', 'concat', ['fcb', 'gmax', 'sumW', 'gavgflat'], { axis: 1 });
  node('hs', 'hardsigmoid', ['cat'], { alpha: 0.3, beta: 0.4 });
  node('clip', 'clip', ['cat'], { lo: -0.5, hi: 0.7 });
  node('both', 'add', ['hs', 'clip'], {});
  node('div', 'div', ['both', param('div/c', [1, g.shapeOf('both')[1]], 1, 2)], {});
  node('logp', 'logsoftmax', ['div'], { axis: 1 });
  // a grouped transposed conv whose output size needs ONNX's output_padding
  const up = { strides: [2, 1], dilations: [1, 1], padding: 'VALID', groups: 2, outShape: [12, 12] } as ConvNodeAttrs & { outShape: [number, number] };
  node('up', 'conv_transpose', ['relu6', param('up/w', [3, 3, 2, 6])], up);
  for (const v of ['logp', 'chsoftmax', 'up']) g.addOutput(v);
  return g;
}
