// `incept saliency` end to end: generated PNG/JPEG files, a thin random Inception v3 (depth
// multiplier 0.1, 75x75), every method; the files it writes (PNG overlay, raw float32 map, JSON)
// checked against the library called directly, and its one-line errors.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type SaliencySummary, findLabel, parseSaliencyArgs, saliencyMain } from '../src/cli/saliency.ts';
import { overlay, toDisplayImage } from '../src/explain/heatmap.ts';
import { disposeSaliency, saliency } from '../src/explain/saliency.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { readImage } from '../src/image/decode.ts';
import { inceptionEvalPreprocessing, preprocessImage } from '../src/image/preprocess.ts';
import { saveModel } from '../src/import/safetensors.ts';
import { SHARED_DIR, fixturesPresent, needsTitle, rng } from './helpers.ts';

const SIZE = 75;
const CLASSES = 10;
const THIN = ['--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', String(SIZE), '--num-classes', String(CLASSES)];
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
      px[i + 2] = 255 * c * (x > w / 2 ? 1 : 0.3);
      px[i + 3] = 255;
    }
  }
  return px;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-saliency-'));
  const png = new PNG({ width: 90, height: 80 });
  png.data = Buffer.from(picture(90, 80, 1));
  files.png = join(dir, 'lesion.png');
  writeFileSync(files.png, PNG.sync.write(png));
  files.jpg = join(dir, 'mole.jpg');
  writeFileSync(files.jpg, jpeg.encode({ width: 120, height: 100, data: picture(120, 100, 2) }, 90).data);
  files.bad = join(dir, 'bad.png');
  writeFileSync(files.bad, 'this is not an image\n');
  files.labels = join(dir, 'labels.txt');
  writeFileSync(files.labels, `${Array.from({ length: CLASSES }, (_, i) => (i === 7 ? 'melanoma, malignant' : `class ${i}`)).join('\n')}\n`);
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await closeRuntime();
});

/** What the last run() wrote to stderr. */
let stderr = '';

/** Runs saliencyMain and returns what it printed to stdout. */
async function run(argv: string[]): Promise<string> {
  const out: string[] = [];
  stderr = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    expect(await saliencyMain(argv)).toBe(0);
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  return out.join('\n');
}

const readF32 = (file: string) => {
  const b = readFileSync(file);
  return Float32Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
};

describe('incept saliency', () => {
  it('vanilla on a PNG and a JPEG: the files match the library called directly; --label picks the class', async () => {
    const out = join(dir, 'vanilla');
    const text = await run([files.png, files.jpg, ...THIN, '--labels', files.labels, '--label', 'Melanoma', '--method', 'vanilla', '--out', out, '--json']);
    const summaries = JSON.parse(text) as SaliencySummary[];
    expect(summaries.map((s) => s.image)).toEqual([files.png, files.jpg]);

    const model = await Model.inceptionV3({ inputSize: SIZE, depthMultiplier: 0.1, numClasses: CLASSES, auxLogits: false, seed: 0 });
    try {
      for (const [i, s] of summaries.entries()) {
        const stem = join(out, `${['lesion', 'mole'][i]}.vanilla`);
        expect(s).toMatchObject({ method: 'vanilla', target: 7, label: 'melanoma, malignant', height: SIZE, width: SIZE });
        expect([s.png, s.raw, s.json]).toEqual([`${stem}.png`, `${stem}.f32`, `${stem}.json`]);
        expect(JSON.parse(readFileSync(s.json, 'utf8'))).toEqual(s);

        const x = preprocessImage(readImage(s.image), inceptionEvalPreprocessing([SIZE, SIZE]));
        const direct = await saliency(model, x, { method: 'vanilla', target: 7 });
        expect(s.score).toBeCloseTo(direct.score, 5);
        const map = readF32(s.raw);
        expect(map.length).toBe(SIZE * SIZE);
        let maxDiff = 0;
        let maxAbs = 0;
        for (let p = 0; p < map.length; p++) {
          maxDiff = Math.max(maxDiff, Math.abs(map[p] - direct.map[p]));
          maxAbs = Math.max(maxAbs, direct.map[p]);
          expect(map[p]).toBeGreaterThanOrEqual(0);
        }
        expect(maxAbs).toBeGreaterThan(0);
        expect(maxDiff).toBeLessThanOrEqual(1e-5 * maxAbs);

        // The PNG is the overlay of that map on the image as the model saw it.
        const png = PNG.sync.read(readFileSync(s.png));
        expect([png.width, png.height]).toEqual([SIZE, SIZE]);
        const expected = overlay(toDisplayImage(x, SIZE, SIZE), map);
        const rgb = Uint8Array.from({ length: SIZE * SIZE * 3 }, (_, k) => png.data[Math.floor(k / 3) * 4 + (k % 3)]);
        expect(Buffer.from(rgb).equals(Buffer.from(expected.data))).toBe(true);
      }
    } finally {
      disposeSaliency(model);
      model.dispose();
    }
  }, 300_000);

  it('the default class is the top prediction; gradcam at its default layer, side by side, text output', async () => {
    const out = join(dir, 'gradcam');
    const text = await run([files.png, ...THIN, '--method', 'gradcam', '--side-by-side', '--out', out]);
    const s = JSON.parse(readFileSync(join(out, 'lesion.gradcam.json'), 'utf8')) as SaliencySummary;
    expect(text).toBe(`${files.png}: gradcam for class ${s.target}, logit ${s.score.toFixed(4)} -> ${s.png}, ${s.raw}`);
    // The last spatial map at 75x75 (Mixed_7 is 1x1 there); one pass, class chosen inside it.
    expect(s).toMatchObject({ layer: 'Mixed_6e', passes: 1, batch: 1 });
    expect(s.label).toBeNull();

    const model = await Model.inceptionV3({ inputSize: SIZE, depthMultiplier: 0.1, numClasses: CLASSES, auxLogits: false, seed: 0 });
    try {
      const x = preprocessImage(readImage(files.png), inceptionEvalPreprocessing([SIZE, SIZE]));
      const logits = (await model.predict(x, { outputs: ['Logits'] })).Logits;
      expect(s.target).toBe(logits.indexOf(Math.max(...logits)));
      expect(s.score).toBeCloseTo(logits[s.target], 5);
    } finally {
      model.dispose();
    }
    const png = PNG.sync.read(readFileSync(s.png));
    expect([png.width, png.height]).toEqual([2 * SIZE + 4, SIZE]);
    // The left half is the image itself.
    const x = toDisplayImage(preprocessImage(readImage(files.png), inceptionEvalPreprocessing([SIZE, SIZE])), SIZE, SIZE);
    for (const [px, py] of [[0, 0], [SIZE - 1, 13], [40, SIZE - 1]]) {
      expect([...png.data.subarray((py * png.width + px) * 4, (py * png.width + px) * 4 + 3)]).toEqual([...x.data.subarray((py * SIZE + px) * 3, (py * SIZE + px) * 3 + 3)]);
    }
    expect(readF32(s.raw).length).toBe(SIZE * SIZE);
  }, 300_000);

  it('smoothgrad and integrated gradients with few samples / steps; --class', async () => {
    const out = join(dir, 'more');
    const sg = JSON.parse(await run([files.jpg, ...THIN, '--class', '3', '--method', 'smoothgrad', '--samples', '3', '--out', out, '--json'])) as SaliencySummary[];
    expect(sg[0]).toMatchObject({ method: 'smoothgrad', target: 3, samples: 3, passes: 1, batch: 4, allZero: false, warnings: [] });
    expect(existsSync(join(out, 'mole.smoothgrad.png'))).toBe(true);
    const ig = JSON.parse(await run([files.jpg, ...THIN, '--class', '3', '--method', 'ig', '--steps', '4', '--baseline', 'black', '--out', out, '--json'])) as SaliencySummary[];
    expect(ig[0]).toMatchObject({ method: 'ig', target: 3, steps: 4, passes: 1, batch: 6 });
    expect(Number.isFinite(ig[0].completeness!.sum) && Number.isFinite(ig[0].completeness!.expected)).toBe(true);
    expect(readF32(ig[0].raw).length).toBe(SIZE * SIZE);
  }, 300_000);

  it('a model file (.safetensors) with its own class names; a non-square --size', async () => {
    const opts = { depthMultiplier: 0.1, inputSize: SIZE, numClasses: 6, auxLogits: false, seed: 7 };
    const classes = ['bg', 'apple', 'pear', 'plum', 'fig', 'kiwi'];
    const file = join(dir, 'thin.safetensors');
    saveModel(file, inceptionV3(opts), { architecture: 'inception_v3', options: opts, classes, preprocessing: { kind: 'inception', centralFraction: 0.875 } });
    const out = join(dir, 'file');
    const [s] = JSON.parse(await run([files.png, '--model', file, '--label', 'Plum', '--out', out, '--json'])) as SaliencySummary[];
    expect(s).toMatchObject({ target: 3, label: 'plum', height: SIZE, width: SIZE });
    // The same weights as the seeded random model: the same logit.
    const [r] = JSON.parse(await run([files.png, ...THIN.slice(0, -2), '--num-classes', '6', '--seed', '7', '--class', '3', '--out', out, '--json'])) as SaliencySummary[];
    expect(r.score).toBeCloseTo(s.score, 5);
    await expect(saliencyMain([files.png, '--model', file, '--label', 'durian', '--out', out])).rejects.toThrow(/no class is labelled 'durian'/);

    const [w] = JSON.parse(await run([files.jpg, ...THIN.filter((_, i) => i < 4), '--size', '75x83', '--num-classes', '4', '--out', join(dir, 'wide'), '--json'])) as SaliencySummary[];
    expect([w.height, w.width]).toEqual([75, 83]);
    const png = PNG.sync.read(readFileSync(w.png));
    expect([png.width, png.height]).toEqual([83, 75]);
    expect(readF32(w.raw).length).toBe(75 * 83);
  }, 300_000);

  it('user mistakes are one-line errors before any work', async () => {
    const out = join(dir, 'errors');
    const fails = (args: string[]) => saliencyMain([...args, '--out', out]);
    await expect(fails([files.png, ...THIN, '--labels', files.labels, '--label', 'nevus'])).rejects.toThrow(/^saliency: no class is labelled 'nevus'$/);
    await expect(fails([files.png, ...THIN, '--labels', files.labels, '--label', 'class'])).rejects.toThrow(/no class is labelled 'class' \(did you mean 'class 0', 'class 1', 'class 2'\?\)/);
    await expect(fails([files.png, ...THIN, '--label', 'melanoma'])).rejects.toThrow(/--label 'melanoma' needs class names: the model has none/);
    await expect(fails([files.png, ...THIN, '--method', 'gradcam', '--layer', 'Mixed_9z'])).rejects.toThrow(
      /^saliency: the model has no layer 'Mixed_9z' \(spatial layers nearest the logits: Mixed_6e, Mixed_6d, Mixed_6c, /,
    );
    await expect(fails([files.png, ...THIN, '--method', 'gradcam', '--layer', 'PreLogits'])).rejects.toThrow(/Grad-CAM needs a spatial layer \(\[N, H, W, C\]\) larger than 1x1; 'PreLogits' is \[1,1,1,\d+\]/);
    await expect(fails([files.png, ...THIN, '--class', '10'])).rejects.toThrow(/--class 10 is not a class of the model \(0\.\.9\)/);
    await expect(fails([files.png, ...THIN, '--class', '1', '--label', 'x'])).rejects.toThrow(/give --class or --label, not both/);
    await expect(fails([files.png, ...THIN, '--layer', 'Mixed_6e'])).rejects.toThrow(/--layer applies to --method gradcam, not vanilla/);
    await expect(fails([files.png, ...THIN, '--method', 'gradcam', '--steps', '3'])).rejects.toThrow(/--steps applies to --method ig, not gradcam/);
    await expect(fails([files.png, ...THIN, '--method', 'sobel'])).rejects.toThrow(/--method needs one of vanilla, smoothgrad, ig, gradcam, got 'sobel'/);
    await expect(fails([files.png, files.png, ...THIN])).rejects.toThrow(/lesion\.png and .*lesion\.png would both write lesion\.\*/);
    await expect(fails([files.png, '--model', 'random:resnet'])).rejects.toThrow(/unknown random model 'resnet'/);
    await expect(fails([files.png, files.bad, ...THIN])).rejects.toThrow(`${files.bad}: not a PNG or JPEG image`);
    await expect(saliencyMain([files.png, ...THIN])).rejects.toThrow(/--out DIR is required/);
    expect(existsSync(out)).toBe(false); // nothing was written
  });

  it('an all-zero Grad-CAM map is reported: allZero and a warning on stderr and in the JSON', async () => {
    // Every head weight of class 3 negative: ReLU(negative weights x ReLU activations) is 0 everywhere.
    const opts = { depthMultiplier: 0.1, inputSize: SIZE, numClasses: 4, auxLogits: false, seed: 5 };
    const g = inceptionV3(opts);
    const w = g.param('InceptionV3/Logits/Conv2d_1c_1x1/weights'); // [1, 1, C, 4]
    w.data = Float32Array.from(w.data, (v, i) => (i % 4 === 3 ? -Math.abs(v) - 0.01 : v));
    const file = join(dir, 'negative.safetensors');
    saveModel(file, g, { architecture: 'inception_v3', options: opts, preprocessing: { kind: 'inception', centralFraction: 0.875 } });
    const [s] = JSON.parse(await run([files.png, '--model', file, '--method', 'gradcam', '--class', '3', '--out', join(dir, 'zero'), '--json'])) as SaliencySummary[];
    expect(s).toMatchObject({ layer: 'Mixed_6e', allZero: true });
    expect(s.warnings).toEqual([expect.stringMatching(/^the Grad-CAM map is all zeros at layer Mixed_6e: /)]);
    expect(stderr).toContain(`incept: warning: ${files.png}: ${s.warnings[0]}\n`);
    expect(readF32(s.raw).every((v) => v === 0)).toBe(true);
  }, 300_000);

  const onnx = join(SHARED_DIR, 'conformance/torchvision-onnx/squeezenet1_1/model.onnx');
  it.skipIf(!fixturesPresent([onnx]))(needsTitle('an ONNX model without a Logits end point: its output is the scores; Grad-CAM at its last feature map', [onnx]), async () => {
    const [s] = JSON.parse(await run([files.jpg, '--model', onnx, '--method', 'gradcam', '--out', join(dir, 'onnx'), '--json'])) as SaliencySummary[];
    expect(stderr).toContain("incept: note: the model has no 'Logits' end point: explaining the scores 'logits'");
    expect(s).toMatchObject({ layer: '/classifier/classifier.2/Relu_output_0', passes: 1, height: 224, width: 224, allZero: false });
    expect(readF32(s.raw).length).toBe(224 * 224);
  }, 300_000);

  it('findLabel: exact, case-insensitive, synonyms; ambiguity is an error', () => {
    const classes = ['background', 'tench, Tinca tinca', 'crane', 'Crane', 'goldfish'];
    expect(findLabel(classes, 'goldfish')).toBe(4);
    expect(findLabel(classes, 'GOLDFISH')).toBe(4);
    expect(findLabel(classes, 'tinca tinca')).toBe(1);
    expect(findLabel(classes, 'Crane')).toBe(3); // an exact match wins
    expect(() => findLabel(classes, 'CRANE')).toThrow(/--label 'CRANE' names 2 classes \(2, 3\); use --class K/);
  });

  it('parses options with = and defaults', () => {
    const o = parseSaliencyArgs(['a.png', '--model=m.onnx', '--out=d', '--method=ig', '--steps=8']);
    expect(o).toMatchObject({ images: ['a.png'], model: 'm.onnx', out: 'd', method: 'ig', steps: 8, colorMap: 'inferno', target: null });
  });

  it('the command line prints one line `incept: error: <file>: <what>` and exits 1', () => {
    const bin = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'saliency', files.bad, '--model', 'random:inception_v3', '--out', join(dir, 'cli')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(`incept: error: ${files.bad}: not a PNG or JPEG image (it starts with bytes 74 68 69 73 20 69 73 20)`);
  });
});
