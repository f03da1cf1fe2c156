// `incept evaluate --report` as people use it: the model's provenance read from its run directory
// (and "unknown" without one), what the evaluated data is (never "test" unless it is the held-out
// split), predictions.json and the worst-errors table, and saliency figures: at least the source
// image's size, with a colour bar, and a note instead of a picture for an all-zero map. The host
// parts use hand-made run directories and maps; the last block trains a tiny model on lavapipe and
// evaluates it through the CLI.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EvaluationResult, evaluateMain, parseEvaluateArgs } from '../src/cli/evaluate.ts';
import { classify, parseClassifyArgs } from '../src/cli/classify.ts';
import { trainMain } from '../src/cli/train.ts';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { colorAt, isAllZero, resizeBilinear } from '../src/explain/heatmap.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { type ReportData, renderReport } from '../src/report/html.ts';
import { predictionRecords, shrink, worstErrors, writePredictions } from '../src/report/predictions.ts';
import { UNKNOWN_RUN, describeEvaluatedData, readProvenance, runSplitOf } from '../src/report/provenance.ts';
import { COLOR_BAR_AREA, COLOR_BAR_GEOMETRY, MAX_SIDE, saliencyFigure } from '../src/report/saliency-figure.ts';

afterAll(closeRuntime);

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-eval-report-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tinyPng = (file: string, w = 6, h = 4) => {
  const png = new PNG({ width: w, height: h });
  png.data.fill(200);
  writeFileSync(file, PNG.sync.write(png));
};

/** A run directory as `incept train` leaves it, by hand: a manifest with splits, run.json, metrics.jsonl, a model file. */
function handMadeRun(): { run: string; files: Record<'train' | 'validation' | 'test', string[]> } {
  const data = join(dir, 'hand-data');
  mkdirSync(data, { recursive: true });
  // train: benign 3, malignant 2; validation: 1, 1; test: benign 2, malignant 1.
  const rows: [string, string, string][] = [];
  const plan: [string, string, number][] = [['train', 'benign', 3], ['train', 'malignant', 2], ['validation', 'benign', 1], ['validation', 'malignant', 1], ['test', 'benign', 2], ['test', 'malignant', 1]];
  const files = { train: [] as string[], validation: [] as string[], test: [] as string[] };
  for (const [split, label, n] of plan) {
    for (let i = 0; i < n; i++) {
      const name = `${split}-${label}-${i}.png`;
      tinyPng(join(data, name));
      rows.push([name, label, split]);
      files[split as keyof typeof files].push(join(data, name));
    }
  }
  writeFileSync(join(data, 'manifest.csv'), `path,label,split\n${rows.map((r) => r.join(',')).join('\n')}\n`);
  const run = join(dir, 'hand-run');
  mkdirSync(run, { recursive: true });
  const options = {
    data: join(data, 'manifest.csv'), model: 'random:inception_v3', depthMultiplier: 0.1, inputSize: 75, classes: null, validationFraction: 0.1,
    freeze: { kind: 'from', layer: 'Mixed_7a' }, lrMultipliers: [], epochs: 3, batch: 4, lr: 0.005, optimizer: 'adam', augment: 'none', seed: 1,
  };
  writeFileSync(join(run, 'run.json'), JSON.stringify({ version: 1, options }));
  const epoch = (e: number, acc: number) => JSON.stringify({ type: 'epoch', epoch: e, step: 2 * e, valLoss: 0.5, valAccuracy: acc });
  // Two epochs done, then a line torn by a kill.
  writeFileSync(join(run, 'metrics.jsonl'), [JSON.stringify({ type: 'step', epoch: 1, step: 1 }), epoch(1, 0.5), epoch(2, 0.75), '{"type":"ep'].join('\n'));
  writeFileSync(join(run, 'model.safetensors'), 'not read by the provenance');
  const t = new Date('2026-03-04T05:06:07Z');
  utimesSync(join(run, 'run.json'), t, t);
  return { run, files };
}

const row = (rows: { label: string; value: string }[], label: string) => rows.find((r) => r.label.trim() === label)?.value;

describe('provenance', () => {
  it('reads the base model, trained layers, epochs, learning rate, data counts per split, run directory and date', () => {
    const { run } = handMadeRun();
    const p = readProvenance(join(run, 'model.safetensors'), 'random:inception_v3');
    expect(p.runDir).toBe(run);
    expect(row(p.rows, 'Base model')).toBe('inception_v3 with random weights (no pretrained weights, depth multiplier 0.1, input 75x75)');
    expect(row(p.rows, 'Trained layers')).toBe('Mixed_7a onward and the new head (earlier layers frozen; --trainable-from Mixed_7a)');
    expect(row(p.rows, 'Epochs')).toBe('2 done of 3 planned; last validation accuracy 75.0%, loss 0.500');
    expect(row(p.rows, 'Learning rate')).toBe('0.005 (adam, batch 4)');
    expect(row(p.rows, 'Training data')).toContain(join(dir, 'hand-data', 'manifest.csv'));
    expect(row(p.rows, 'train split')).toBe('5 (benign 3, malignant 2)');
    expect(row(p.rows, 'validation split')).toBe('2 (benign 1, malignant 1)');
    expect(row(p.rows, 'test split')).toBe('3 (benign 2, malignant 1)');
    expect(row(p.rows, 'Run directory')).toBe(run);
    expect(row(p.rows, 'Run date')).toMatch(/^started 2026-03-04 05:06:07 UTC, model written \d{4}-\d\d-\d\d /);
    const html = renderReport({ provenance: p.rows, evaluated: 'The run\'s held-out test split.' });
    for (const r of p.rows) expect(html).toContain(r.value.replace(/'/g, '&#39;'));
  });

  it('says unknown for a model file given without its run directory', () => {
    const loose = join(dir, 'loose');
    mkdirSync(loose, { recursive: true });
    const p = readProvenance(join(loose, 'model.safetensors'));
    expect(p.runDir).toBeNull();
    for (const label of ['Base model', 'Trained layers', 'Epochs', 'Learning rate', 'Training data']) expect(row(p.rows, label)).toBe(UNKNOWN_RUN);
    // A run fineTune wrote from code: metrics but no run.json.
    writeFileSync(join(loose, 'metrics.jsonl'), `${JSON.stringify({ type: 'epoch', epoch: 1 })}\n`);
    const lib = readProvenance(join(loose, 'model.safetensors'));
    expect(row(lib.rows, 'Base model')).toMatch(/^unknown \(.* has metrics.jsonl but no run.json: the run was not started by 'incept train'\)$/);
    expect(row(lib.rows, 'Epochs')).toBe('1 done (from metrics.jsonl)');
    const d = describeEvaluatedData(['/x/a.png', '/x/b.png'], '/x', 'all', p);
    expect(d.kind).toBe('user-supplied data');
    expect(d.text).toContain('2 images from /x');
    expect(d.text).toContain('unknown');
    expect(d.text).not.toMatch(/\btest\b/);
  });

  it('labels the evaluated data as what it is', () => {
    const { run, files } = handMadeRun();
    const p = readProvenance(join(run, 'model.safetensors'));
    const test = describeEvaluatedData(files.test, 'm.csv', 'test', p);
    expect(test.kind).toBe('held-out test split');
    expect(test.warning).toBeUndefined();
    const val = describeEvaluatedData(files.validation, 'm.csv', 'validation', p);
    expect(val.kind).toBe('validation split');
    expect(val.warning).toMatch(/validation split/);
    const train = describeEvaluatedData(files.train, 'm.csv', 'train', p);
    expect(train.kind).toBe('training images');
    expect(train.warning).toMatch(/5 of the 5 evaluated images were used to train this model/);
    const all = describeEvaluatedData([...files.train, ...files.validation, ...files.test], 'm.csv', 'all', p);
    expect(all.kind).toBe('mixed');
    expect(all.text).toContain('5 training, 2 validation, 3 test');
    const other = join(dir, 'other.png');
    tinyPng(other);
    const user = describeEvaluatedData([other], 'elsewhere', 'all', p);
    expect(user.kind).toBe('user-supplied data');
    expect(user.warning).toBeUndefined();
    expect([files.train[0], files.validation[1], files.test[2], other].map((f) => runSplitOf(f, p.splits))).toEqual(['train', 'validation', 'test', 'not in the run']);
    expect(runSplitOf(other, null)).toBeNull();
    // The worst-errors table names each image's split only when they differ.
    const row = (runSplit: string) => ({ file: 'f.png', trueLabel: 'a', predictedLabel: 'b', probability: 0.9, trueProbability: 0.1, runSplit });
    expect(renderReport({ worstErrors: { rows: [row('train'), row('test')], wrong: 2, total: 2 } })).toContain('<th>Run split</th>');
    expect(renderReport({ worstErrors: { rows: [row('test'), row('test')], wrong: 2, total: 2 } })).not.toContain('<th>Run split</th>');
  });
});

describe('options', () => {
  it('--saliency N with --report (default 4), refused without it', () => {
    expect(parseEvaluateArgs(['--data', 'd', '--model', 'm', '--report', 'r.html'])!.saliency).toBe(4);
    expect(parseEvaluateArgs(['--data', 'd', '--model', 'm', '--report', 'r.html', '--saliency', '0'])!.saliency).toBe(0);
    expect(() => parseEvaluateArgs(['--data', 'd', '--model', 'm', '--saliency', '2'])).toThrow(/--saliency applies with --report/);
  });

  it('a predictions.json that could not be written beside the report fails first, naming it', async () => {
    const out = join(dir, 'blocked');
    mkdirSync(join(out, 'predictions.json'), { recursive: true });
    await expect(evaluateMain(['--data', 'nowhere', '--model', 'none', '--report', join(out, 'r.html')])).rejects.toThrow(/--report \(predictions.json beside it\) .*predictions.json: is a folder/);
  });
});

describe('predictions', () => {
  // 6 images, 3 classes; rows 1, 2, 4 are wrong with confidences 0.6, 0.8, 0.8 (a tie: file order).
  const classes = ['a', 'b', 'c'];
  const labels = Int32Array.from([0, 1, 2, 0, 2, 1]);
  const probs = Float64Array.from([0.7, 0.2, 0.1, 0.6, 0.3, 0.1, 0.1, 0.8, 0.1, 0.9, 0.05, 0.05, 0.1, 0.8, 0.1, 0.2, 0.5, 0.3]);
  const files = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];

  it('one record per image with every probability, and the worst errors most confident first', () => {
    const records = predictionRecords(files, labels, probs, classes);
    expect(records[1]).toEqual({ file: 'r1', trueLabel: 'b', predictedLabel: 'a', probability: 0.6, probabilities: { a: 0.6, b: 0.3, c: 0.1 }, correct: false });
    expect(records.map((r) => r.correct)).toEqual([true, false, false, true, false, true]);
    expect(worstErrors(records)).toEqual([2, 4, 1]);
    expect(worstErrors(records, 2)).toEqual([2, 4]);
    const file = join(dir, 'predictions.json');
    writePredictions(file, { classes }, records);
    const back = JSON.parse(readFileSync(file, 'utf8'));
    expect(back.count).toBe(6);
    expect(back.predictions).toEqual(JSON.parse(JSON.stringify(records)));
    expect(() => predictionRecords(files.slice(1), labels, probs, classes)).toThrow(/predictionRecords: 5 files, 6 labels/);
  });

  it('thumbnails are box averages, never enlarged', () => {
    const data = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (Math.floor(i / 3) % 2 === 0 ? 0 : 200));
    const small = shrink({ width: 4, height: 4, data }, 2);
    expect([small.width, small.height]).toEqual([2, 2]);
    expect([...small.data]).toEqual(new Array(12).fill(100));
    expect(shrink({ width: 4, height: 4, data }, 96).width).toBe(4);
  });
});

describe('saliency figures', () => {
  const image = (w: number, h: number) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(128) });
  const spot = (w: number, h: number) => Float32Array.from({ length: w * h }, (_, p) => Math.max(0, 5 - Math.hypot((p % w) - w / 2, Math.floor(p / w) - h / 2)));

  it('at least the source image size, with a colour bar from low (bottom) to high (top)', () => {
    const fig = saliencyFigure(image(20, 20), spot(20, 20), { sourceWidth: 300, sourceHeight: 200 });
    if (!('png' in fig)) throw new Error('expected a figure');
    const png = PNG.sync.read(fig.png);
    expect([png.width, png.height]).toEqual([300 + COLOR_BAR_AREA, 300]);
    const px = (x: number, y: number) => [...png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3)];
    const barX = 300 + COLOR_BAR_GEOMETRY.x + COLOR_BAR_GEOMETRY.width / 2;
    expect(px(barX, COLOR_BAR_GEOMETRY.inset)).toEqual(colorAt(1));
    expect(px(barX, png.height - COLOR_BAR_GEOMETRY.inset - 1)).toEqual(colorAt(0));
    expect(px(5, 5)).toEqual([128, 128, 128]); // no saliency there: the image unchanged
    expect(px(150, 150)).not.toEqual([128, 128, 128]);
    // A small source still gets a readable picture; a huge one is capped.
    const small = saliencyFigure(image(28, 28), spot(28, 28), { sourceWidth: 28, sourceHeight: 28 });
    expect('png' in small && PNG.sync.read(small.png).height).toBe(256);
    const huge = saliencyFigure(image(30, 20), spot(30, 20), { sourceWidth: 6000, sourceHeight: 4000 });
    expect('png' in huge && [PNG.sync.read(huge.png).width, PNG.sync.read(huge.png).height]).toEqual([MAX_SIDE + COLOR_BAR_AREA, Math.round((MAX_SIDE * 2) / 3)]);
  });

  it('enlarges maps bilinearly (exact on a linear ramp) and tells an all-zero map', () => {
    // v = x + 2y on a 2 x 2 grid; enlarged to 4 x 4 the pixel centres sit at 0, 0.25, 0.75, 1 (edges clamped).
    const big = resizeBilinear([0, 1, 2, 3], 2, 2, 1, 4, 4);
    const at = [0, 0.25, 0.75, 1];
    expect([...big]).toEqual(at.flatMap((fy) => at.map((fx) => fx + 2 * fy)));
    expect(() => resizeBilinear([0, 1, 2], 2, 2, 1, 4, 4)).toThrow(/a 2x2x1 array needs 4 values, got 3/);
    expect(isAllZero(new Float32Array(5))).toBe(true);
    expect(isAllZero(Float32Array.from([0, 0, 1e-30]))).toBe(false);
  });

  it('an all-zero map gives a note, not a picture; so does a uniform one', () => {
    const zero = saliencyFigure(image(8, 8), new Float32Array(64));
    expect(zero).toEqual({ note: 'map is all zeros (the gradient vanished for this image and class): nothing to draw' });
    // The saliency result's own verdict counts even when the map has values.
    expect(saliencyFigure(image(8, 8), spot(8, 8), { allZero: true, why: 'dead ReLUs' })).toEqual({ note: 'map is all zeros (dead ReLUs): nothing to draw' });
    expect('note' in saliencyFigure(image(8, 8), new Float32Array(64).fill(0.3))).toBe(true);
    expect(() => saliencyFigure(image(8, 8), new Float32Array(63))).toThrow(/saliencyFigure: the map has 63 values/);

    const fig = saliencyFigure(image(8, 8), spot(8, 8));
    const data: ReportData = {
      saliency: {
        items: [{ name: 'x.png', trueLabel: 'a', predictedLabel: 'b', explained: 'b', probability: 0.9, maps: [{ method: 'Grad-CAM', note: (zero as { note: string }).note }, { method: 'gradient of the loss', png: (fig as { png: Buffer }).png }] }],
      },
    };
    const html = renderReport(data);
    expect(html).toContain('<p class="zero">map is all zeros (the gradient vanished for this image and class): nothing to draw</p>');
    expect([...html.matchAll(/<img /g)].length).toBe(1);
    expect(html).toContain('explains <b>b</b>, p = 0.900');
    expect(html).toContain('true: <b>a</b>');
  });
});

describe('incept evaluate --report end to end (tiny model, lavapipe)', () => {
  it('writes provenance, the data label, predictions.json matching the predictions, worst errors and saliency examples', async () => {
    const manifest = generateLesionDataset({ count: 12, size: 80, seed: 5, dir: join(dir, 'data'), validationFraction: 0.34 }).manifest;
    // Move a third of the training rows to a test split.
    const lines = readFileSync(manifest, 'utf8').trim().split('\n');
    let n = 0;
    const withTest = lines.map((l, i) => (i > 0 && l.endsWith(',train') && ++n % 3 === 0 ? l.replace(/,train$/, ',test') : l));
    writeFileSync(manifest, `${withTest.join('\n')}\n`);
    const run = join(dir, 'run');
    const train = ['--data', manifest, '--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75', '--head', '2', '--trainable-from', 'Mixed_7a'];
    expect(await trainMain([...train, '--epochs', '1', '--batch', '4', '--seed', '3', '--workers', '1', '--out', run, '--progress', 'none'])).toBe(0);

    const html = join(dir, 'eval', 'report.html');
    const json = join(dir, 'eval.json');
    const log = console.log;
    console.log = () => {};
    try {
      expect(await evaluateMain(['--data', manifest, '--split', 'test', '--model', join(run, 'model.safetensors'), '--report', html, '--json', json, '--saliency', '2'])).toBe(0);
    } finally {
      console.log = log;
    }
    const r = JSON.parse(readFileSync(json, 'utf8')) as EvaluationResult;
    const pred = JSON.parse(readFileSync(join(dir, 'eval', 'predictions.json'), 'utf8'));
    expect(pred.evaluated).toBe('held-out test split');
    expect(r.evaluated).toBe('held-out test split');
    expect(pred.predictions.every((p: { runSplit: string }) => p.runSplit === 'test')).toBe(true);
    expect(pred.count).toBe(r.count);
    // The confusion matrix of the records is the evaluation's.
    const confusion = r.classes.map(() => r.classes.map(() => 0));
    for (const p of pred.predictions) confusion[r.classes.indexOf(p.trueLabel)][r.classes.indexOf(p.predictedLabel)]++;
    expect(confusion).toEqual(r.confusion);
    // And every probability is classify's for that file.
    const scored = await classify(parseClassifyArgs([...pred.predictions.map((p: { file: string }) => p.file), '--model', join(run, 'model.safetensors'), '--top', '2']));
    scored.forEach((c, i) => {
      for (const t of c.top) expect(pred.predictions[i].probabilities[t.label!]).toBeCloseTo(t.prob, 5);
    });

    const page = readFileSync(html, 'utf8');
    // (booleans: a failing toContain would print the whole page with its images)
    for (const want of ["The run&#39;s held-out test split", 'Mixed_7a onward and the new head', run, 'id="worst-errors"']) expect(page.includes(want), want).toBe(true);
    expect(/used to train this model|not a held-out test/.test(page)).toBe(false);
    // Two example cards, each with the image and two maps (figures at least the 80-pixel source, or notes).
    const saliency = page.slice(page.indexOf('<section id="saliency">'));
    expect([...saliency.matchAll(/class="saliency-card/g)].length).toBe(2);
    for (const m of saliency.matchAll(/<img[^>]*width="(\d+)" height="(\d+)"/g)) expect(Math.min(Number(m[1]), Number(m[2]))).toBeGreaterThanOrEqual(80);
    expect([...saliency.matchAll(/<figcaption>(Grad-CAM|gradient of the loss)/g)].length).toBe(4);

    // The same model file outside its run directory: provenance unknown, the data user-supplied.
    const loose = join(dir, 'loose-model.safetensors');
    copyFileSync(join(run, 'model.safetensors'), loose);
    const html2 = join(dir, 'eval2', 'report.html');
    console.log = () => {};
    try {
      expect(await evaluateMain(['--data', manifest, '--split', 'test', '--model', loose, '--report', html2, '--saliency', '0'])).toBe(0);
    } finally {
      console.log = log;
    }
    const page2 = readFileSync(html2, 'utf8');
    for (const want of [UNKNOWN_RUN, 'User-supplied data']) expect(page2.includes(want), want).toBe(true);
    expect(page2.includes('id="saliency"')).toBe(false);
  }, 120_000);
});
