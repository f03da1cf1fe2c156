// `incept classify`: the command's main function on generated PNG and JPEG files with a thin random
// Inception v3 (depth multiplier 0.1, 75x75 input), checking the JSON, top-k order, labels and errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Classification, classifyMain, readLabels, topK } from '../src/cli/classify.ts';
import { UsageError } from '../src/cli/errors.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { saveModel } from '../src/import/safetensors.ts';
import { writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { rng } from './helpers.ts';

const THIN = ['--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75'];
let dir = '';
const files: Record<string, string> = {};

/** A smooth random-ish picture, RGBA bytes. */
function picture(w: number, h: number, seed: number): Uint8Array {
  const r = rng(seed);
  const [a, b, c] = [r(), r(), r()];
  const px = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      px[i] = 255 * (0.5 + 0.5 * Math.sin(x * a * 0.3));
      px[i + 1] = 255 * (0.5 + 0.5 * Math.cos(y * b * 0.2));
      px[i + 2] = 255 * c;
      px[i + 3] = 255;
    }
  }
  return px;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-classify-'));
  const png = new PNG({ width: 90, height: 80 });
  png.data = Buffer.from(picture(90, 80, 1));
  files.png = join(dir, 'a.png');
  writeFileSync(files.png, PNG.sync.write(png));
  files.jpg = join(dir, 'b.jpg');
  writeFileSync(files.jpg, jpeg.encode({ width: 120, height: 100, data: picture(120, 100, 2) }, 90).data);
  files.bad = join(dir, 'bad.png');
  writeFileSync(files.bad, 'this is not an image\n');
  files.labels = join(dir, 'labels.txt');
  writeFileSync(files.labels, `${Array.from({ length: 10 }, (_, i) => `class ${i}`).join('\n')}\n`);
  // TF-Slim's 'N:label' format without the background line: 1000 labels for 1001 classes.
  files.imagenet = join(dir, 'imagenet.txt');
  writeFileSync(files.imagenet, Array.from({ length: 1000 }, (_, i) => `${i}:thing ${i}`).join('\n'));
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await closeRuntime();
});

/** Runs classifyMain and returns what it printed to stdout. */
async function run(argv: string[]): Promise<string> {
  const out: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await classifyMain(argv)).toBe(0);
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  return out.join('\n');
}

function checkRanked(r: Classification, k: number, classes: number): void {
  expect(Object.keys(r).sort()).toEqual(['file', 'top']);
  expect(r.top).toHaveLength(k);
  for (const [i, p] of r.top.entries()) {
    expect(Object.keys(p).sort()).toEqual(['index', 'label', 'prob']);
    expect(Number.isInteger(p.index) && p.index >= 0 && p.index < classes).toBe(true);
    expect(p.prob).toBeGreaterThanOrEqual(0);
    expect(p.prob).toBeLessThanOrEqual(1);
    if (i > 0) expect(p.prob).toBeLessThanOrEqual(r.top[i - 1].prob);
  }
  expect(new Set(r.top.map((p) => p.index)).size).toBe(k);
}

describe('incept classify', () => {
  it('--json: structure, sorted probabilities, top count, labels; batches of 2 agree with each other', async () => {
    // Three images in batches of two: the PNG runs at batch 2 and again at batch 1.
    const text = await run([files.png, files.jpg, files.png, ...THIN, '--labels', files.labels, '--top', '3', '--batch', '2', '--json']);
    const results = JSON.parse(text) as Classification[];
    expect(results.map((r) => r.file)).toEqual([files.png, files.jpg, files.png]);
    for (const r of results) {
      checkRanked(r, 3, 10);
      for (const p of r.top) expect(p.label).toBe(`class ${p.index}`);
    }
    expect(results[2].top.map((p) => p.index)).toEqual(results[0].top.map((p) => p.index));
    results[2].top.forEach((p, i) => expect(p.prob).toBeCloseTo(results[0].top[i].prob, 5));
  });

  it('1000 TF-Slim labels for a 1001-class model: class 0 is background', async () => {
    const results = JSON.parse(await run([files.jpg, ...THIN, '--num-classes', '1001', '--labels', files.imagenet, '--top', '7', '--json'])) as Classification[];
    expect(results).toHaveLength(1);
    checkRanked(results[0], 7, 1001);
    for (const p of results[0].top) expect(p.label).toBe(p.index === 0 ? 'background' : `thing ${p.index - 1}`);
  });

  it('text output without labels; --top larger than the classes is capped', async () => {
    const text = await run([files.png, ...THIN, '--num-classes', '4', '--top', '9']);
    const lines = text.split('\n');
    expect(lines[0]).toBe(files.png);
    expect(lines).toHaveLength(5);
    for (const l of lines.slice(1)) expect(l).toMatch(/^\s+\d+\.\d\d% {2}- \(\d\)$/);
  });

  it('--output NODE: each image gets the raw values of that node (softmax(Logits) = the probabilities)', async () => {
    const args = [files.png, files.jpg, ...THIN, '--num-classes', '6', '--top', '6', '--batch', '2', '--json'];
    const results = JSON.parse(await run([...args, '--output', 'Logits'])) as Classification[];
    for (const r of results) {
      expect(Object.keys(r).sort()).toEqual(['file', 'output', 'top']);
      expect(r.output).toHaveLength(6);
      const max = Math.max(...r.output!);
      const e = r.output!.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, v) => a + v, 0);
      for (const p of r.top) expect(p.prob).toBeCloseTo(e[p.index] / sum, 5);
    }
    // A value name (not an end point) works too, and its size is per image.
    const mixed = JSON.parse(await run([files.png, ...THIN, '--num-classes', '6', '--json', '--output', 'InceptionV3/Logits/SpatialSqueeze'])) as Classification[];
    expect(mixed[0].output).toEqual(results[0].output);
    const text = await run([files.png, ...THIN, '--num-classes', '6', '--top', '1', '--output', 'Logits']);
    expect(text.split('\n')[2]).toMatch(/^ {2}output \(6 values\): (-?\d\.\d+(e[-+]\d+)? ){5}-?\d\.\d+(e[-+]\d+)?$/);
  });

  it('preprocessing flags reach the model: --mean/--std and --crop change the result, the defaults equal TF-Slim eval', async () => {
    const base = [files.jpg, ...THIN, '--num-classes', '6', '--top', '6', '--json', '--output', 'Logits'];
    const logits = async (extra: string[]) => (JSON.parse(await run([...base, ...extra])) as Classification[])[0].output!;
    const def = await logits([]);
    expect(await logits(['--crop', '0.875', '--mean', '127.5', '--std', '127.5'])).toEqual(
      await logits(['--crop', '0.875', '--mean', '127.5,127.5,127.5', '--std', '127.5']),
    );
    // (x - 127.5) / 127.5 is TF-Slim's (x / 255 - 0.5) * 2 up to float rounding.
    const same = await logits(['--mean', '127.5', '--std', '127.5']);
    same.forEach((v, i) => expect(v).toBeCloseTo(def[i], 4));
    expect(await logits(['--crop', '1'])).not.toEqual(def);
    expect(await logits(['--mean', '100'])).not.toEqual(def);
  });

  it('a file that is not an image: an error naming the file, before the model is built', async () => {
    await expect(classifyMain([files.png, files.bad, ...THIN])).rejects.toThrow(UsageError);
    await expect(classifyMain([files.png, files.bad, ...THIN])).rejects.toThrow(`${files.bad}: not a PNG or JPEG image`);
    await expect(classifyMain([join(dir, 'missing.jpg'), ...THIN])).rejects.toThrow(/missing\.jpg: cannot read \(no such file\)/);
  });

  it('bad models, labels and options', async () => {
    await expect(classifyMain([files.png, '--model', join(dir, 'nope.ckpt')])).rejects.toThrow(/nope\.ckpt: no checkpoint here/);
    await expect(classifyMain([files.png, '--model', files.labels])).rejects.toThrow(/labels\.txt: .*checkpoint/);
    await expect(classifyMain([files.png, '--model', dir])).rejects.toThrow(UsageError);
    await expect(classifyMain([files.png, '--model', 'random:resnet'])).rejects.toThrow(/unknown random model 'resnet'/);
    await expect(classifyMain([files.png])).rejects.toThrow(/--model is required/);
    await expect(classifyMain([...THIN])).rejects.toThrow(/no images given/);
    await expect(classifyMain([files.png, ...THIN, '--top', '0'])).rejects.toThrow(/--top needs a whole number >= 1, got '0'/);
    await expect(classifyMain([files.png, ...THIN, '--input-size', '50'])).rejects.toThrow(/Inception v3 needs inputs of at least 75x75, got 50x50/);
    await expect(classifyMain([files.png, ...THIN, '--size', '80y80'])).rejects.toThrow(/--size needs HxW \(e\.g\. 128x128\), got '80y80'/);
    await expect(classifyMain([files.png, ...THIN, '--size', '80x90'])).rejects.toThrow(/--input-size 75 and --size 80x90 disagree/);
    await expect(classifyMain([files.png, ...THIN, '--crop', '1.5'])).rejects.toThrow(/--crop needs a fraction in \(0, 1\], got '1\.5'/);
    await expect(classifyMain([files.png, ...THIN, '--mean', '1,2'])).rejects.toThrow(/--mean needs a number or three \(R,G,B\), got '1,2'/);
    await expect(classifyMain([files.png, ...THIN, '--std', '0'])).rejects.toThrow(/--std needs a number or three \(R,G,B\), not 0/);
    await expect(classifyMain([files.png, ...THIN, '--output', 'Mixed_9z'])).rejects.toThrow(/--output 'Mixed_9z' is not a value or end point/);
    await expect(classifyMain([files.png, ...THIN, '--output', 'Logits', '--output', 'PreLogits'])).rejects.toThrow(/--output is given twice/);
    await expect(classifyMain([files.png, ...THIN, '--frobnicate'])).rejects.toThrow(/unknown option '--frobnicate'/);
    await expect(classifyMain([files.png, ...THIN, '--labels', join(dir, 'none.txt')])).rejects.toThrow(/none\.txt: cannot read labels/);
    const eleven = join(dir, 'eleven.txt');
    writeFileSync(eleven, 'a\nb\nc\n');
    await expect(classifyMain([files.png, ...THIN, '--num-classes', '10', '--labels', eleven])).rejects.toThrow(
      /eleven\.txt: 3 labels \(largest index 2\) do not fit a model of 10 classes/,
    );
  });

  it('an incept model file (.safetensors): its class names and input size; the same weights as the seeded random model', async () => {
    const opts = { depthMultiplier: 0.1, inputSize: 75, numClasses: 6, auxLogits: false, seed: 7 };
    const g = inceptionV3(opts);
    const classes = ['bg', 'apple', 'pear', 'plum', 'fig', 'kiwi'];
    const file = join(dir, 'thin.safetensors');
    saveModel(file, g, { architecture: 'inception_v3', options: opts, classes, preprocessing: { kind: 'inception', centralFraction: 0.875 } });
    const fromFile = JSON.parse(await run([files.jpg, '--model', file, '--top', '6', '--json'])) as Classification[];
    checkRanked(fromFile[0], 6, 6);
    for (const p of fromFile[0].top) expect(p.label).toBe(classes[p.index]);
    const random = JSON.parse(
      await run([files.jpg, ...THIN, '--num-classes', '6', '--seed', '7', '--top', '6', '--json']),
    ) as Classification[];
    expect(fromFile[0].top.map((p) => p.index)).toEqual(random[0].top.map((p) => p.index));
    fromFile[0].top.forEach((p, i) => expect(p.prob).toBeCloseTo(random[0].top[i].prob, 6));
    await expect(classifyMain([files.jpg, '--model', file, '--input-size', '99'])).rejects.toThrow(/takes 75x75 images; a preprocessing size of 99x99 does not fit it/);
  });

  it('a TF checkpoint (V2) loads by TF-Slim names; a missing variable is an error naming the checkpoint', async () => {
    const opts = { depthMultiplier: 0.1, inputSize: 75, numClasses: 5, auxLogits: false, seed: 3 };
    const g = inceptionV3(opts);
    const prefix = join(dir, 'model.ckpt');
    writeCheckpointV2(prefix, [...g.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }]));
    const args = [files.png, '--model', prefix, '--depth-multiplier', '0.1', '--input-size', '75', '--num-classes', '5', '--top', '5', '--json'];
    const fromCkpt = JSON.parse(await run(args)) as Classification[];
    const random = JSON.parse(await run([files.png, ...THIN, '--num-classes', '5', '--seed', '3', '--top', '5', '--json'])) as Classification[];
    fromCkpt[0].top.forEach((p, i) => {
      expect(p.index).toBe(random[0].top[i].index);
      expect(p.prob).toBeCloseTo(random[0].top[i].prob, 6);
    });
    const partial = join(dir, 'partial.ckpt');
    writeCheckpointV2(partial, [...g.params.values()].slice(1).map((p) => [p.name, { shape: [...p.shape], data: p.data }]));
    await expect(classifyMain([files.png, '--model', `${partial}.index`, '--depth-multiplier', '0.1', '--input-size', '75', '--num-classes', '5'])).rejects.toThrow(
      /partial\.ckpt\.index: the checkpoint lacks 1 of inception_v3's parameters \(InceptionV3\/Conv2d_1a_3x3\/weights/,
    );
  });

  it('the command line prints one line `incept: error: <file>: <what>` and exits 1', () => {
    const bin = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'classify', files.bad, '--model', 'random:inception_v3'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(`incept: error: ${files.bad}: not a PNG or JPEG image (it starts with bytes 74 68 69 73 20 69 73 20)`);
  });
});

describe('helpers', () => {
  it('topK: largest first, ties by index', () => {
    expect(topK(Float32Array.from([0.1, 0.4, 0.1, 0.4]), 3)).toEqual([
      { index: 1, prob: Math.fround(0.4) },
      { index: 3, prob: Math.fround(0.4) },
      { index: 0, prob: Math.fround(0.1) },
    ]);
  });

  it('readLabels: plain lines and N:label lines', () => {
    const f = join(dir, 'l.txt');
    writeFileSync(f, '0:background\r\n1:tench, Tinca tinca\r\n2:goldfish\r\n\r\n');
    expect([...readLabels(f)]).toEqual([
      [0, 'background'],
      [1, 'tench, Tinca tinca'],
      [2, 'goldfish'],
    ]);
    writeFileSync(f, 'cat\ndog\n');
    expect([...readLabels(f)]).toEqual([
      [0, 'cat'],
      [1, 'dog'],
    ]);
    writeFileSync(f, '\n\n');
    expect(() => readLabels(f)).toThrow(/the labels file is empty/);
  });
});
