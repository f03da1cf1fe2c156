// `incept import` and every model format through `incept classify --model`: a frozen GraphDef, an
// ONNX model and TF checkpoints (V1, V2) written here, converted to incept model files that must
// classify exactly as the originals; format detection by content; preprocessing metadata and its
// overrides; the errors, each naming the file. With ../shared: TensorFlow's MobileNet graphs (the
// frozen ImageNet one and the retrained 22-class one) imported and classified, against TF's numbers.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Classification, classifyMain } from '../src/cli/classify.ts';
import { importMain } from '../src/cli/import.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/ir.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { deserializeGraph, serializeGraph } from '../src/graph/serialize.ts';
import { readImage } from '../src/image/decode.ts';
import { preprocessImage } from '../src/image/preprocess.ts';
import { detectModelFormat, openModel } from '../src/import/load-model.ts';
import { decodeModelMeta, load as loadSafetensors } from '../src/import/safetensors.ts';
import { writeCheckpointV1, writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { encodeTfMessage } from '../src/import/tf-proto.ts';
import { SHARED_DIR, expectClose, hasShared, rng, sharedMissingMessage } from './helpers.ts';
import { TINY_CLASSES, tinyGraphDef, tinyOnnx } from './model-files.ts';

let dir = '';
const f: Record<string, string> = {};
const at = (name: string) => join(dir, name);

function picture(w: number, h: number, seed: number): Uint8Array {
  const r = rng(seed);
  const [a, b, c] = [r(), r(), r()];
  const px = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) px.set([255 * (0.5 + 0.5 * Math.sin(x * a)), 255 * (0.5 + 0.5 * Math.cos(y * b * 0.7)), 255 * c * ((x + y) % 2), 255], (y * w + x) * 4);
  return px;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-import-'));
  f.jpg1 = at('one.jpg');
  writeFileSync(f.jpg1, jpeg.encode({ width: 20, height: 16, data: picture(20, 16, 1) }, 90).data);
  f.jpg2 = at('two.jpg');
  writeFileSync(f.jpg2, jpeg.encode({ width: 90, height: 80, data: picture(90, 80, 2) }, 80).data);
  const png = new PNG({ width: 9, height: 7 });
  png.data = Buffer.from(picture(9, 7, 3));
  f.png = at('three.png');
  writeFileSync(f.png, PNG.sync.write(png));
  f.pb = at('tiny_graph.pb');
  writeFileSync(f.pb, tinyGraphDef());
  f.labels = at('tiny_labels.txt'); // found next to tiny_graph.pb
  writeFileSync(f.labels, `${Array.from({ length: TINY_CLASSES }, (_, i) => `kind ${i}`).join('\n')}\n`);
  f.onnx = at('tiny.onnx');
  writeFileSync(f.onnx, tinyOnnx());
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await closeRuntime();
});

/** Runs a command's main function, returning stdout (stderr notes are kept in `notes`). */
async function run(main: (argv: string[]) => Promise<number>, argv: string[], notes: string[] = []): Promise<string> {
  const out: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    notes.push(String(s));
    return true;
  });
  try {
    expect(await main(argv)).toBe(0);
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  return out.join('\n');
}
const classify = async (argv: string[], notes?: string[]) => JSON.parse(await run(classifyMain, [...argv, '--json'], notes)) as Classification[];
const imp = (argv: string[]) => run(importMain, argv);

/** Float64 evaluation of a model file's graph on classify's preprocessed pixels. */
function reference(model: string, image: string, outputs: string[]): Record<string, Float64Array> {
  const m = openModel(model, { extraOutputs: outputs });
  const x = preprocessImage(readImage(image), m.preprocessing!);
  return evaluateReference(m.graph, { [m.graph.inputs[0].name]: x }, outputs);
}

describe('incept import + classify: the model file classifies exactly like the original', () => {
  const images = () => [f.jpg1, f.jpg2, f.png];

  it('frozen GraphDef: same JSON from the .pb and the .safetensors (top-k, labels found next to the graph, --output of an inner node)', async () => {
    const out = at('tiny-pb.safetensors');
    const printed = await imp([f.pb, '--out', out]);
    expect(printed).toContain(`class names from ${f.labels}`);
    expect(printed).toContain(`${out}: graphdef model tiny_graph, 4 parameters (137 values), input [6,6,3]`);
    expect(printed).toContain('preprocessing: mean_std, 6x6, crop 1, mean 127.5, std 127.5');
    const meta = decodeModelMeta(loadSafetensors(out).metadata, out);
    expect(meta.architecture).toBe('graph');
    expect(meta.classes).toEqual(Array.from({ length: TINY_CLASSES }, (_, i) => `kind ${i}`));
    expect(meta.preprocessing).toEqual({ kind: 'mean_std', size: [6, 6], crop: 1, mean: 127.5, std: 127.5 });

    const args = [...images(), '--top', '3', '--batch', '2', '--output', 'conv/Relu'];
    const fromPb = await classify(['--model', f.pb, ...args]);
    const fromFile = await classify(['--model', out, ...args]);
    expect(fromFile).toEqual(fromPb);
    expect(fromPb[0].top[0].label).toMatch(/^kind \d$/);
    // The engine against a float64 evaluation of the same graph on the same pixels.
    fromPb.forEach((r, i) => {
      const ref = reference(f.pb, images()[i], ['prob', 'conv/Relu']);
      for (const p of r.top) expect(p.prob).toBeCloseTo(ref.prob[p.index], 5);
      expectClose(r.output!, ref['conv/Relu'], { rtol: 1e-4, atol: 1e-5 }, `conv/Relu of ${r.file}`);
      expect(r.output).toHaveLength(6 * 6 * 4);
    });
  });

  it('ONNX: same JSON from the .onnx and the .safetensors; content decides the format, not the extension', async () => {
    const out = at('tiny-onnx.safetensors');
    await imp([f.onnx, '--out', out, '--labels', f.labels]);
    const args = [...images(), '--top', '5', '--output', 'r'];
    const fromOnnx = await classify(['--model', f.onnx, '--labels', f.labels, ...args]);
    expect(await classify(['--model', out, ...args])).toEqual(fromOnnx);
    const disguised = at('onnx-really.pb');
    copyFileSync(f.onnx, disguised);
    expect(detectModelFormat(disguised)).toBe('onnx');
    expect(await classify(['--model', disguised, '--labels', f.labels, ...args])).toEqual(fromOnnx);
    const renamed = at('model.bin');
    copyFileSync(out, renamed);
    expect(detectModelFormat(renamed)).toBe('safetensors');
    expect(await classify(['--model', renamed, ...args])).toEqual(fromOnnx);
    // ONNX defaults: torchvision's ImageNet mean / std, crop 0.875.
    const ref = reference(f.onnx, f.jpg2, ['prob']);
    for (const p of fromOnnx[1].top) expect(p.prob).toBeCloseTo(ref.prob[p.index], 5);
  });

  it('TF checkpoints (V2 prefix / .index, V1 file): Inception v3 with the class count and depth multiplier read from the checkpoint', async () => {
    const opts = { depthMultiplier: 0.1, inputSize: 75, numClasses: 4, auxLogits: false, seed: 5 };
    const g = inceptionV3(opts);
    const tensors = [...g.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }] as [string, { shape: number[]; data: Float32Array }]);
    const v2 = at('thin.ckpt');
    writeCheckpointV2(v2, tensors);
    const v1 = at('thin-v1.ckpt');
    writeCheckpointV1(v1, tensors);
    const labels = at('four.txt');
    writeFileSync(labels, 'w\nx\ny\nz\n');
    const args = [f.jpg2, f.jpg1, '--size', '75x75', '--top', '4', '--output', 'PreLogits'];
    const notes: string[] = [];
    const fromV2 = await classify(['--model', v2, '--labels', labels, ...args], notes);
    expect(notes.join('')).toMatch(/thin\.ckpt: loaded \d+; missing 0/);
    expect(await classify(['--model', `${v2}.index`, '--labels', labels, ...args])).toEqual(fromV2);
    expect(await classify(['--model', v1, '--labels', labels, ...args])).toEqual(fromV2);
    const out = at('thin.safetensors');
    await imp([v2, '--out', out, '--size', '75x75', '--labels', labels]);
    const meta = decodeModelMeta(loadSafetensors(out).metadata, out);
    expect(meta.options).toEqual({ numClasses: 4, depthMultiplier: 0.1, inputSize: 75, auxLogits: false });
    expect(meta.preprocessing).toEqual({ kind: 'inception', size: [75, 75], crop: 0.875, mean: 127.5, std: 127.5 });
    expect(await classify(['--model', out, ...args])).toEqual(fromV2);
    expect(fromV2[0].top.map((p) => p.label).sort()).toEqual(['w', 'x', 'y', 'z']);
  });

  it('preprocessing in the metadata: flags at import are stored and used; flags at classify override them', async () => {
    const out = at('tiny-pre.safetensors');
    await imp([f.pb, '--out', out, '--crop', '0.5', '--mean', '120,110,100', '--std', '60']);
    const meta = decodeModelMeta(loadSafetensors(out).metadata, out);
    expect(meta.preprocessing).toEqual({ kind: 'mean_std', size: [6, 6], crop: 0.5, mean: [120, 110, 100], std: 60 });
    const flags = ['--crop', '0.5', '--mean', '120,110,100', '--std', '60'];
    const stored = await classify(['--model', out, f.jpg2, '--output', 'flat']);
    expect(stored).toEqual(await classify(['--model', f.pb, f.jpg2, '--output', 'flat', ...flags]));
    expect(stored).not.toEqual(await classify(['--model', f.pb, f.jpg2, '--output', 'flat']));
    expect(await classify(['--model', out, f.jpg2, '--output', 'flat', '--crop', '1', '--mean', '127.5', '--std', '127.5'])).toEqual(
      await classify(['--model', f.pb, f.jpg2, '--output', 'flat']),
    );
    // A Placeholder of unknown size takes --size, which is then stored.
    const open = at('open.pb');
    writeFileSync(open, tinyGraphDef({ unknownSize: true }));
    await expect(imp([open, '--out', at('open.safetensors')])).rejects.toThrow(/open\.pb: node 'input' \(Placeholder\): dim 1 of the Placeholder is unknown; give the image size \(--size HxW\)/);
    await imp([open, '--out', at('open.safetensors'), '--size', '9x11']);
    const m = openModel(at('open.safetensors'));
    expect(m.graph.inputs[0].shape).toEqual([1, 9, 11, 3]);
    expect(m.preprocessing?.size).toEqual([9, 11]);
  });

  it('import --output cuts the graph at the logits; classify then applies the softmax itself', async () => {
    const out = at('tiny-logits.safetensors');
    const printed = await imp([f.pb, '--out', out, '--output', 'fc/BiasAdd:0']);
    expect(printed).toContain("output 'fc/BiasAdd', 5 class names");
    const notes: string[] = [];
    const cut = await classify(['--model', out, f.jpg1, f.png, '--top', '5'], notes);
    expect(notes.join('')).toContain("output 'fc/BiasAdd' is not a softmax; classify applies one");
    const full = await classify(['--model', f.pb, f.jpg1, f.png, '--top', '5']);
    cut.forEach((r, i) => r.top.forEach((p, k) => {
      expect(p.index).toBe(full[i].top[k].index);
      expect(p.prob).toBeCloseTo(full[i].top[k].prob, 6);
    }));
    expect(openModel(out).graph.has('prob')).toBe(false);
  });
});

describe('errors name the file and what is wrong', () => {
  it.each([
    ['text.txt', Buffer.from('hello, not a model\n'), /text\.txt: not a model file incept can read/],
    ['empty.onnx', Buffer.alloc(0), /empty\.onnx: empty file, not a model/],
    ['lenet.meta', encodeTfMessage('GraphDef', { node: [{ name: 'a', op: 'NoOp' }] }), /lenet\.meta: a MetaGraphDef \(\.meta\) holds no weights/],
    ['saved_model.pb', Buffer.from([0x08, 0x01, 0x12, 0x02, 0x0a, 0x00]), /saved_model\.pb: a TensorFlow SavedModel, not a frozen GraphDef/],
    ['notgraph.pb', Buffer.from('\x0a\xff\xff\xff\x0f garbage', 'latin1'), /notgraph\.pb: not a valid GraphDef \(corrupt or truncated protobuf/],
    ['random.pb', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) & 255)), /random\.pb: /],
    ['opset.onnx', tinyOnnx({ opset: 99 }), /opset\.onnx: ai\.onnx opset 99 is not supported \(incept's ONNX importer knows opsets 1 to 25\)/],
    ['frob.onnx', tinyOnnx({ convOp: 'Frobnicate' }), /frob\.onnx: op Frobnicate not supported by the ONNX importer; 1 node: 'conv' \(Frobnicate\)/],
    ['ms.onnx', tinyOnnx({ convDomain: 'com.microsoft' }), /ms\.onnx: node 'conv' \(Conv\) is from operator domain 'com\.microsoft'/],
  ])('%s', async (name, bytes, message) => {
    writeFileSync(at(name), bytes);
    await expect(imp([at(name), '--out', at('x.safetensors')])).rejects.toThrow(message);
    await expect(classifyMain([f.jpg1, '--model', at(name)])).rejects.toThrow(message);
    expect(existsSync(at('x.safetensors'))).toBe(false);
  });

  it('options that do not fit the model, and usage mistakes', async () => {
    await expect(imp([f.pb])).rejects.toThrow(/--out MODEL\.safetensors is required/);
    await expect(imp([f.pb, f.onnx, '--out', at('y.safetensors')])).rejects.toThrow(/give exactly one model file \(got 2/);
    await expect(imp([at('none.pb'), '--out', at('y.safetensors')])).rejects.toThrow(/none\.pb: no such file/);
    await expect(imp([at('none'), '--out', at('y.safetensors')])).rejects.toThrow(/none: no checkpoint here/);
    await expect(imp([f.pb, '--out', at('y.safetensors'), '--size', '8x8'])).rejects.toThrow(/tiny_graph\.pb: the model takes 6x6 images; a preprocessing size of 8x8 does not fit it/);
    await expect(imp([f.pb, '--out', at('y.safetensors'), '--output', 'nothing'])).rejects.toThrow(/tiny_graph\.pb: output 'nothing' is not a node of the graph/);
    const three = at('three.txt');
    writeFileSync(three, 'a\nb\nc\n');
    await expect(imp([f.pb, '--out', at('y.safetensors'), '--labels', three])).rejects.toThrow(/three\.txt: 3 labels \(largest index 2\) do not fit a model of 5 classes/);
    await expect(classifyMain([f.jpg1, '--model', f.pb, '--output', 'nothing'])).rejects.toThrow(/tiny_graph\.pb: output 'nothing' is not a node of the graph/);
    await imp([f.pb, '--out', at('y.safetensors')]);
    await expect(classifyMain([f.jpg1, '--model', at('y.safetensors'), '--output', 'nothing'])).rejects.toThrow(/y\.safetensors: 'nothing' is not a value or end point/);
    await expect(imp([f.onnx, '--out', at('y.safetensors'), '--crop', '2'])).rejects.toThrow(/import: --crop needs a fraction in \(0, 1\], got '2'/);
  });

  it('the command line: `incept import` writes the model file, then `incept classify` reads it', () => {
    const bin = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
    const out = at('cli.safetensors');
    const r = spawnSync(process.execPath, [bin, 'import', f.onnx, '--out', out, '--labels', f.labels], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`${out}: onnx model tiny`);
    const bad = spawnSync(process.execPath, [bin, 'import', f.labels, '--out', out], { encoding: 'utf8', timeout: 120_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^incept: error: .*tiny_labels\.txt: not a model file incept can read/);
  });
});

describe('graph definitions in model files (src/graph/serialize.ts)', () => {
  function build(batch: number, quirk = false): Graph {
    const g = new Graph('t');
    g.addInput('x', [batch, 4, 4, 2]);
    g.addNode('p', 'avgpool', ['x'], { kernel: [2, 2], strides: [2, 2], padding: 'VALID' });
    // A batch spelled out (as TF's Reshape to [1, 8]); `quirk` makes the structure depend on the batch.
    g.addNode('r', 'reshape', ['p'], { shape: quirk && batch > 1 ? [-1, 8] : [batch, 8] });
    g.addNode('s', 'softmax', ['r'], { axis: -1 });
    g.addOutput('s');
    g.setEndPoint('Predictions', 's');
    return g;
  }

  it('numbers that follow the batch become {batch: k}; the definition rebuilds at any batch', () => {
    const def = serializeGraph((b) => build(b));
    expect(def.batch).toBe('any');
    expect(def.inputs[0].shape).toEqual([{ batch: 1 }, 4, 4, 2]);
    expect(def.nodes[1].attrs).toEqual({ shape: [{ batch: 1 }, 8] });
    const json = JSON.parse(JSON.stringify(def));
    for (const b of [1, 2, 5]) {
      const g = deserializeGraph(json, b);
      expect(g.shapeOf('s')).toEqual([b, 8]);
      expect(g.endPoint('Predictions')).toBe('s');
    }
  });

  it('a graph whose structure changes with the batch is kept for batch 1 only', () => {
    const def = serializeGraph((b) => build(b, true));
    expect(def.batch).toBe(1);
    expect(deserializeGraph(def, 1).shapeOf('s')).toEqual([1, 8]);
    expect(() => deserializeGraph(def, 2, undefined, 'm.safetensors')).toThrow(/m\.safetensors: graph t was saved for batch 1 only/);
  });
});

// ---- the TensorFlow MobileNet fixtures ----

const MOBILENET = join(SHARED_DIR, 'fixtures/tf-mobilenet');
const FROZEN = join(MOBILENET, 'models/mobilenet_v1_0.25_128/frozen_graph.pb');
const RETRAINED = join(MOBILENET, 'retrained_graph.pb');
const CHECKPOINTS = join(SHARED_DIR, 'fixtures/tf-checkpoints');
const present = hasShared && existsSync(FROZEN) && existsSync(RETRAINED);

if (!present) it.skip(sharedMissingMessage('importing the TF MobileNet fixture graphs'), () => {});

describe.skipIf(!present)('TensorFlow MobileNet v1 0.25/128 fixtures: import, then classify like TensorFlow', () => {
  const LOGITS = 'MobilenetV1/Predictions/Reshape';
  // Training images with TF's logits (bottleneck files), and two Test images.
  const train = ['Orange/r_13_100.jpg', 'Apple Granny Smith/0_100.jpg', 'Lemon/r_136_100.jpg'];
  const images = () => [...train.map((t) => join(MOBILENET, 'train', t)), join(MOBILENET, 'test/Pear/3_100.jpg'), join(MOBILENET, 'test/Lemon/3_100.jpg')];

  it.each([
    ['frozen_graph.pb', 'labels.txt', FROZEN, 1001],
    ['retrained_graph.pb', 'retrained_labels.txt', RETRAINED, 22],
  ])('%s: the model file gives the same JSON as the .pb; labels from %s; logits within 2e-4 of TF', async (name, labelsFile, pb, classes) => {
    for (const i of images()) expect(existsSync(i), i).toBe(true);
    const out = at(name.replace('.pb', '.safetensors'));
    const printed = await imp([pb, '--out', out]);
    expect(printed).toContain(`class names from ${join(pb, '..', labelsFile)}`);
    expect(printed).toContain('preprocessing: mean_std, 128x128, crop 1, mean 127.5, std 127.5');
    const args = [...images(), '--top', '3', '--output', LOGITS];
    const fromPb = await classify(['--model', pb, ...args]);
    const fromFile = await classify(['--model', out, ...args]);
    expect(fromFile).toEqual(fromPb);
    const meta = decodeModelMeta(loadSafetensors(out).metadata, out);
    expect((meta.classes as string[]).length).toBe(classes);
    // TF's logits for the training images (retrain.py's bottleneck files).
    let worst = 0;
    train.forEach((t, i) => {
      const tf = readFileSync(join(MOBILENET, 'bottlenecks', `${t}_mobilenet_0.25_128.txt`), 'utf8').split(',').map(Number);
      fromFile[i].output!.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - tf[k]))));
    });
    expect(worst).toBeLessThan(2e-4);
    console.log(`${name}: classify on the imported model file == on the .pb; logits vs TF max |diff| ${worst.toExponential(2)}`);
    for (const r of fromFile) console.log(`  ${r.file.slice(MOBILENET.length + 1)}: ${r.top.map((p) => `${p.label} ${(100 * p.prob).toFixed(2)}%`).join(', ')}`);
    if (classes === 22) {
      // The retrained head names the right fruit for these images.
      expect(fromFile.map((r) => r.top[0].label)).toEqual(['orange', 'apple granny smith', 'lemon', 'pear', 'lemon']);
    }
  }, 300_000);

  it('checkpoints that are not TF-Slim Inception v3 are refused, naming the file', async () => {
    const lenet = join(CHECKPOINTS, 'v2-lenet5-mnist/lenet.index');
    const traffic = join(CHECKPOINTS, 'v1-traffic-sign-multiscale-cnn/model.ckpt');
    for (const c of [lenet, traffic, join(CHECKPOINTS, 'v2-lenet5-mnist/lenet'), join(CHECKPOINTS, 'v1-traffic-sign-multiscale-cnn')]) {
      await expect(imp([c, '--out', at('ck.safetensors')])).rejects.toThrow(new RegExp(`^${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*: not a TF-Slim Inception v3 checkpoint`));
    }
    await expect(imp([join(CHECKPOINTS, 'v2-lenet5-mnist/lenet.meta'), '--out', at('ck.safetensors')])).rejects.toThrow(/lenet\.meta: a MetaGraphDef/);
  });
});
