// The HTML report: escaping, which sections appear, data URIs that decode to the very bytes given,
// no script and no external reference; the metrics buildEvaluationReport derives from predictions;
// and the page as a browser shows it: headless Chromium (Debian's chromium package, installed by
// scripts/chromium.mjs when missing and possible) loads it without console errors, decodes every
// image, and a full-page screenshot is saved to .cache/report-screenshot.png for people to look at.
// The browser part skips, saying why, when there is no Chromium and it cannot be installed.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium } from '../scripts/chromium.mjs';
import { buildEvaluationReport, pickExamples } from '../src/report/evaluate-report.ts';
import { type ReportData, dataUri, escapeHtml, formatDuration, formatNumber, formatPercent, renderReport, writeReport } from '../src/report/html.ts';
import { Canvas, type Rgb } from '../src/report/plot.ts';
import { saliencyFigure } from '../src/report/saliency-figure.ts';
import { confusionFromProbs } from '../src/train/metrics.ts';
import { rocAuc } from '../src/train/roc.ts';
import { Browser, checkPage } from './browser.ts';
import { rng } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..');
const CACHE = join(ROOT, '.cache');
const CLASSES = ['benign', 'malignant'];

// ---------------------------------------------------------------------------------------------
// Synthetic data: 20 two-class predictions that separate the classes imperfectly, and pictures.

function predictions(n = 20, seed = 7): { probs: Float64Array; labels: Int32Array } {
  const r = rng(seed);
  const probs = new Float64Array(n * 2);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const p = Math.min(0.99, Math.max(0.01, 0.5 + (labels[i] ? 0.2 : -0.2) + (r() - 0.5) * 0.9));
    probs[2 * i] = 1 - p;
    probs[2 * i + 1] = p;
  }
  return { probs, labels };
}

/** A brown blob on skin, bigger and more irregular for malignant cases. */
function lesionPng(i: number, malignant: boolean, size = 80): Buffer {
  const c = new Canvas(size, size, [226, 192, 164]);
  const r = rng(100 + i);
  const radius = size * (malignant ? 0.3 : 0.2);
  const wobble = malignant ? 0.35 : 0.08;
  const phase = r() * 6;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - size / 2;
      const dy = y - size / 2;
      const edge = radius * (1 + wobble * Math.sin(5 * Math.atan2(dy, dx) + phase));
      if (Math.hypot(dx, dy) < edge) c.blend(x, y, malignant && x > size / 2 ? [60, 30, 25] : [110, 60, 40]);
    }
  }
  return c.toPng();
}

/** A heat map over a dimmed copy of the lesion: a hot spot at its centre. */
function overlayPng(i: number, size = 80): Buffer {
  const c = new Canvas(size, size, [40, 40, 70]);
  const hot: Rgb = [255, 210, 40];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) c.blend(x, y, hot, Math.max(0, 1 - Math.hypot(x - size / 2 - (i % 5), y - size / 2) / (size / 3)));
  }
  return c.toPng();
}

function history() {
  const train = Array.from({ length: 40 }, (_, s) => ({ step: s * 5, loss: 0.7 * Math.exp(-s / 12) + 0.15, accuracy: 0.5 + 0.4 * (1 - Math.exp(-s / 10)) }));
  const validation = [1, 2, 3, 4].map((e) => ({ step: e * 50, loss: 0.62 - 0.08 * e, accuracy: 0.55 + 0.07 * e }));
  return { train, validation };
}

/** What the demo would hand over: everything. */
function fullReport(): { data: ReportData; examples: number[] } {
  const { probs, labels } = predictions();
  const examples = pickExamples(probs, labels, 2, 8);
  const data = buildEvaluationReport({
    probs,
    labels,
    classNames: CLASSES,
    images: examples.map((i) => ({ index: i, image: lesionPng(i, labels[i] === 1), saliency: overlayPng(i), name: `lesion_${String(i).padStart(3, '0')}.png` })),
    saliencyMethod: 'vanilla gradient of the loss',
    title: 'incept demo: benign vs malignant lesions',
    subtitle: 'npm run demo',
    summary: {
      model: 'Inception v3, new 2-class head',
      dataset: 'procedural dermoscopy-like lesions (ABCD rule)',
      imageCounts: { train: 160, validation: 20, test: 20 },
      inputSize: 139,
      trainableLayers: ['Mixed_7a', 'Mixed_7b', 'Mixed_7c', 'Logits'],
      optimizer: 'RMSProp, learning rate 0.01 decaying 0.94 per epoch',
      epochs: 4,
      wallTime: 187.4,
      files: [
        { label: 'Checkpoint', path: '/tmp/incept-demo/model.safetensors' },
        { label: 'Report', path: '/tmp/incept-demo/report.html' },
      ],
    },
    training: { history: history(), xLabel: 'step' },
    notes: [{ level: 'warning', text: 'The weights were randomly initialised: no ImageNet checkpoint was found in weights/.' }, 'Synthetic data for a test.'],
  });
  return { data, examples };
}

// ---------------------------------------------------------------------------------------------

const sectionIds = (html: string) => [...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]);
const imgSrcs = (html: string) => [...html.matchAll(/<img[^>]*\ssrc="([^"]*)"/g)].map((m) => m[1]);

describe('renderReport', () => {
  it('escapes every piece of text, in content and attributes', () => {
    const evil = `<script>alert("x")</script> & 'q'`;
    const png = lesionPng(0, false, 8);
    const html = renderReport({
      title: evil,
      subtitle: evil,
      notes: [evil, { level: 'warning', text: evil }],
      summary: { model: evil, dataset: evil, classNames: [evil, 'b'], trainableLayers: evil, optimizer: evil, files: [{ label: evil, path: evil }], extra: [{ label: evil, value: evil }] },
      roc: { positiveClass: evil, auc: 0.8 },
      perClass: [{ name: evil, support: 3, sensitivity: 1, specificity: 0.5, precision: 0.75, auc: 0.9 }],
      examples: { items: [{ image: png, saliency: png, trueClass: evil, predictedClass: evil, name: evil }], saliencyMethod: evil },
    });
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toContain(evil);
    const escaped = escapeHtml(evil);
    expect(escaped).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
    // title (twice), subtitle, 2 notes, 7 summary fields + classes, ROC, table, example (true, predicted, name, 2 alts), method
    expect(html.split(escaped).length - 1).toBeGreaterThanOrEqual(20);
    expect(html).toContain(`alt="saliency of ${escaped}"`);
  });

  it('writes only the sections it has data for', () => {
    const empty = renderReport({});
    expect(sectionIds(empty)).toEqual([]);
    expect(empty).toContain('Nothing to report.');
    expect(imgSrcs(empty)).toEqual([]);

    const summaryOnly = renderReport({ summary: { model: 'Inception v3', epochs: 2 } });
    expect(sectionIds(summaryOnly)).toEqual(['summary']);
    expect(summaryOnly).not.toContain('Nothing to report.');
    expect(summaryOnly).not.toContain('class="notes"');
    expect(summaryOnly).not.toContain('class="headline"');

    // An evaluation without training or images: no training or examples section.
    const { probs, labels } = predictions();
    const evaluation = renderReport(buildEvaluationReport({ probs, labels, classNames: CLASSES, bootstrap: false }));
    expect(sectionIds(evaluation)).toEqual(['summary', 'roc', 'confusion']);

    const { data } = fullReport();
    const html = renderReport(data);
    expect(sectionIds(html)).toEqual(['summary', 'training', 'roc', 'confusion', 'examples']);
    for (const heading of ['Run summary', 'Training', 'ROC curve', 'Operating points', 'Confusion matrix', 'Per class', 'Test images']) {
      expect(html).toContain(`>${heading}</h`);
    }
    for (const text of ['Inception v3, new 2-class head', 'train 160, validation 20, test 20 (200 in all)', '139 \u00d7 139 pixels', '3 min 07 s', '/tmp/incept-demo/model.safetensors']) {
      expect(html).toContain(escapeHtml(text));
    }
    // Warnings come before other notes, and the notes before everything else.
    expect(html.indexOf('class="warning"')).toBeLessThan(html.indexOf('Synthetic data for a test.'));
    expect(html.indexOf('class="notes"')).toBeLessThan(html.indexOf('<section'));
  });

  it('embeds images as data: URIs that decode to the bytes given, and refers to nothing outside', () => {
    const { data, examples } = fullReport();
    const html = renderReport(data);
    const srcs = imgSrcs(html);
    expect(srcs).toHaveLength(3 + 2 * examples.length); // training, ROC, confusion; image + overlay each
    for (const src of srcs) {
      const m = src.match(/^data:image\/png;base64,([A-Za-z0-9+/]+={0,2})$/);
      expect(m, src.slice(0, 60)).not.toBeNull();
      const bytes = Buffer.from(m![1], 'base64');
      expect(bytes.toString('base64')).toBe(m![1]); // canonical base64, nothing lost
      const png = PNG.sync.read(bytes);
      expect(png.width).toBeGreaterThan(0);
      // The width/height attributes are the image's own.
      const tag = html.slice(html.indexOf(src) - 200, html.indexOf(src) + src.length + 60);
      expect(tag).toContain(`width="${png.width}" height="${png.height}"`);
    }
    const items = data.examples!.items;
    expect(srcs).toContain(dataUri(items[0].image));
    expect(srcs).toContain(dataUri(items[0].saliency!));
    // Self-contained: no scripts, no URLs, a policy that forbids both.
    expect(html).not.toMatch(/<script|<link|<iframe|\ssrc="(?!data:)|\shref=|url\(|@import|https?:\/\//i);
    expect(html).toContain(`content="default-src 'none'; img-src data:; style-src 'unsafe-inline'"`);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
  });

  it('accepts JPEG bytes and refuses anything else, naming the image', () => {
    const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]);
    expect(dataUri(jpeg)).toBe(`data:image/jpeg;base64,${Buffer.from(jpeg).toString('base64')}`);
    const notAnImage = new TextEncoder().encode('GIF89a......');
    expect(() => renderReport({ examples: { items: [{ image: notAnImage, predictedClass: 'a', name: 'x.gif' }] } })).toThrow(/x\.gif is neither PNG nor JPEG/);
    expect(() => renderReport({ roc: { png: new Uint8Array(0), auc: 0.5 } })).toThrow(/ROC curve is neither PNG nor JPEG/);
  });

  it('formats numbers, percentages and durations, with a dash for missing values', () => {
    expect(formatNumber(0.91234)).toBe('0.912');
    expect(formatNumber(NaN)).toBe('\u2014');
    expect(formatNumber(undefined)).toBe('\u2014');
    expect(formatPercent(0.875)).toBe('87.5%');
    expect(formatPercent(NaN)).toBe('\u2014');
    expect(formatDuration(12.34)).toBe('12.3 s');
    expect(formatDuration(245)).toBe('4 min 05 s');
    expect(formatDuration(3725)).toBe('1 h 02 min');
    // Undefined rates (a class nobody predicted) read as a dash in the per-class table.
    const html = renderReport({ perClass: [{ name: 'rare', support: 0, sensitivity: NaN, specificity: 1, precision: NaN }] });
    expect(html).toContain('<td>rare</td><td>0</td><td>\u2014</td><td>100.0%</td><td>\u2014</td></tr>');
    expect(html).not.toContain('<th>AUC</th>');
  });

  it('shows operating points, an unreachable one with a dash, and a long layer list folded', () => {
    const html = renderReport({
      roc: {
        auc: 0.9,
        operatingPoints: [
          { target: 0.9, threshold: 0.42, sensitivity: 0.8, specificity: 0.92, interpolated: 0.81 },
          { target: 1, threshold: Infinity, sensitivity: 0, specificity: 1, interpolated: 0 },
          { target: 0.99, threshold: NaN, sensitivity: NaN, specificity: NaN, interpolated: 0.1 },
        ],
      },
      summary: { trainableLayers: Array.from({ length: 9 }, (_, i) => `layer_${i}`) },
    });
    expect(html).toContain('<tr><td>90.0%</td><td>80.0%</td><td>92.0%</td><td>0.420</td><td>81.0%</td></tr>');
    expect(html).toContain('<tr><td>100.0%</td><td>0.0%</td><td>100.0%</td><td>\u221e</td><td>0.0%</td></tr>');
    expect(html).toContain('<tr><td>99.0%</td><td>\u2014</td><td>\u2014</td><td>\u2014</td><td>10.0%</td></tr>');
    expect(html).toContain('9: layer_0, layer_1, layer_2, layer_3, layer_4, \u2026<details><summary>all 9</summary>');
  });

  it('writeReport creates the folder and returns the absolute path', () => {
    const dir = join(CACHE, 'report-test', String(process.pid));
    const path = writeReport(join(dir, 'sub', 'r.html'), { title: 'written' });
    expect(path).toBe(join(dir, 'sub', 'r.html'));
    expect(readFileSync(path, 'utf8')).toBe(renderReport({ title: 'written' }));
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('buildEvaluationReport', () => {
  it('computes accuracy, confusion, per-class rates, AUC with a bootstrap interval and operating points', () => {
    const { probs, labels } = predictions();
    const data = buildEvaluationReport({ probs, labels, classNames: CLASSES });
    const confusion = confusionFromProbs(probs, labels, 2);
    expect(data.confusion?.matrix).toEqual(confusion);
    const correct = confusion[0][0] + confusion[1][1];
    expect(data.accuracy).toBeCloseTo(correct / 20, 12);
    expect(data.summary?.imageCounts).toEqual({ test: 20 });
    expect(data.summary?.classNames).toEqual(CLASSES);

    const [benign, malignant] = data.perClass!;
    expect(malignant).toMatchObject({ name: 'malignant', support: 10 });
    expect(malignant.sensitivity).toBeCloseTo(confusion[1][1] / 10, 12);
    expect(malignant.specificity).toBeCloseTo(confusion[0][0] / 10, 12);
    expect(malignant.precision).toBeCloseTo(confusion[1][1] / (confusion[1][1] + confusion[0][1]), 12);
    expect(benign.sensitivity).toBeCloseTo(malignant.specificity, 12);

    const p1 = Array.from({ length: 20 }, (_, i) => probs[2 * i + 1]);
    const roc = data.roc!;
    expect(roc.positiveClass).toBe('malignant');
    expect(roc.auc).toBeCloseTo(rocAuc(p1, labels), 12);
    expect(malignant.auc).toBeCloseTo(roc.auc!, 12);
    expect(benign.auc).toBeCloseTo(roc.auc!, 12); // scored by 1 - p: the same ranking reversed
    expect(roc.positives).toBe(10);
    expect(roc.negatives).toBe(10);
    expect(roc.ci!.lower).toBeLessThanOrEqual(roc.auc!);
    expect(roc.ci!.upper).toBeGreaterThanOrEqual(roc.auc!);
    expect(roc.ci!.replicates).toBe(1000);
    expect(roc.operatingPoints!.map((p) => p.target)).toEqual([0.9, 0.95, 0.98]);
    for (const p of roc.operatingPoints!) expect(p.specificity).toBeGreaterThanOrEqual(p.target);
    expect(PNG.sync.read(Buffer.from(roc.png!)).width).toBe(640);
    // Seeded: the same data give the same page.
    expect(renderReport(buildEvaluationReport({ probs, labels, classNames: CLASSES }))).toBe(renderReport(data));
  });

  it('labels the example images from the predictions', () => {
    const { data, examples } = fullReport();
    const { probs, labels } = predictions();
    const items = data.examples!.items;
    expect(items).toHaveLength(examples.length);
    items.forEach((item, j) => {
      const i = examples[j];
      const pred = probs[2 * i + 1] > probs[2 * i] ? 1 : 0;
      expect(item.trueClass).toBe(CLASSES[labels[i]]);
      expect(item.predictedClass).toBe(CLASSES[pred]);
      expect(item.probability).toBe(probs[2 * i + pred]);
    });
    expect(data.examples!.saliencyMethod).toBe('vanilla gradient of the loss');
    expect(() => buildEvaluationReport({ ...predictions(), classNames: CLASSES, images: [{ index: 20, image: lesionPng(0, false, 8), name: 'x.png' }] })).toThrow(
      /image x\.png has index 20, not a row of the 20 predictions/,
    );
  });

  it('with three classes: one-vs-rest curves and a macro AUC; operating points only for a named class', () => {
    const r = rng(3);
    const n = 30;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const probs = new Float64Array(n * 3);
    for (let i = 0; i < n; i++) {
      const raw = [0, 1, 2].map((c) => r() + (c === labels[i] ? 0.6 : 0));
      const sum = raw.reduce((a, b) => a + b, 0);
      raw.forEach((v, c) => (probs[i * 3 + c] = v / sum));
    }
    const names = ['nevus', 'melanoma', 'keratosis'];
    const all = buildEvaluationReport({ probs, labels, classNames: names });
    expect(all.roc?.operatingPoints).toBeUndefined();
    const aucs = all.perClass!.map((c) => c.auc!);
    expect(all.roc?.macroAuc).toBeCloseTo((aucs[0] + aucs[1] + aucs[2]) / 3, 12);
    expect(all.confusion?.matrix).toHaveLength(3);
    const melanoma = buildEvaluationReport({ probs, labels, classNames: names, positiveClass: 1, bootstrap: { replicates: 200, seed: 1 } });
    expect(melanoma.roc?.positiveClass).toBe('melanoma');
    expect(melanoma.roc?.auc).toBeCloseTo(aucs[1], 12);
    expect(melanoma.roc?.ci?.replicates).toBe(200);
    expect(melanoma.roc?.operatingPoints).toHaveLength(3);
    expect(() => buildEvaluationReport({ probs, labels, classNames: names, positiveClass: 3 })).toThrow(/positiveClass 3 is not a class index/);
    expect(() => buildEvaluationReport({ probs, labels, classNames: ['a', 'b'] })).toThrow(/buildEvaluationReport/);
  });

  it('says so when a class has no test cases, and leaves the ROC out', () => {
    const probs = Float64Array.from([0.8, 0.2, 0.6, 0.4, 0.3, 0.7]);
    const labels = Int32Array.from([0, 0, 0]);
    const data = buildEvaluationReport({ probs, labels, classNames: CLASSES });
    expect(data.roc).toBeUndefined();
    expect(data.notes).toContainEqual({ level: 'warning', text: 'No test cases of malignant: rates and AUCs involving them are undefined.' });
    expect(sectionIds(renderReport(data))).toEqual(['summary', 'confusion']);
  });

  it('pickExamples: the most confident mistakes (at most half), then correct cases of each class', () => {
    const { probs, labels } = predictions();
    const chosen = pickExamples(probs, labels, 2, 8);
    expect(chosen).toHaveLength(8);
    expect(new Set(chosen).size).toBe(8);
    const wrong = (i: number) => (probs[2 * i + 1] > probs[2 * i] ? 1 : 0) !== labels[i];
    const mistakes = chosen.filter(wrong);
    expect(mistakes.length).toBeLessThanOrEqual(4);
    expect(chosen.slice(0, mistakes.length)).toEqual(mistakes); // mistakes first
    const right = chosen.filter((i) => !wrong(i));
    expect(new Set(right.map((i) => labels[i])).size).toBe(2);
    expect(pickExamples(probs, labels, 2, 100)).toHaveLength(20);
  });
});

// ---------------------------------------------------------------------------------------------
// In a browser

const chromium = ensureChromium();
const browserSuite = chromium.path ? 'in headless Chromium' : `in headless Chromium: SKIPPED, ${chromium.reason}`;
if (!chromium.path) console.warn(`report.test.ts: the browser checks are skipped: ${chromium.reason}`);

describe.skipIf(!chromium.path)(browserSuite, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await Browser.launch(chromium.path!);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('loads the report without errors, decodes every image, and takes a screenshot', async () => {
    const { data, examples } = fullReport();
    mkdirSync(CACHE, { recursive: true });
    const file = writeReport(join(CACHE, 'report-test.html'), data);
    const page = await checkPage(browser, pathToFileURL(file).href, 1280);

    expect(page.errors, `browser errors; chromium said:\n${browser.lastOutput}`).toEqual([]);
    expect(page.title).toBe('incept demo: benign vs malignant lesions');
    expect(page.sections).toEqual(['summary', 'training', 'roc', 'confusion', 'examples']);
    expect(page.requests[0]).toBe(pathToFileURL(file).href);
    for (const url of page.requests.slice(1)) expect(url.startsWith('data:image/png;base64,'), url).toBe(true);

    const pngs = imgSrcs(renderReport(data)).map((src) => PNG.sync.read(Buffer.from(src.slice(src.indexOf(',') + 1), 'base64')));
    expect(page.images).toHaveLength(3 + 2 * examples.length);
    page.images.forEach((im, i) => {
      expect(im, `image ${i} (${im.alt})`).toMatchObject({ complete: true, decoded: true, naturalWidth: pngs[i].width, naturalHeight: pngs[i].height });
    });
    expect(page.width).toBe(1280); // nothing sticks out sideways

    const shot = PNG.sync.read(page.screenshot);
    expect(shot.width).toBe(1280);
    expect(shot.height).toBe(page.height);
    // Not blank: the figures and photographs give many distinct colours.
    const colours = new Set<number>();
    for (let i = 0; i < shot.data.length; i += 4 * 97) colours.add((shot.data[i] << 16) | (shot.data[i + 1] << 8) | shot.data[i + 2]);
    expect(colours.size).toBeGreaterThan(200);
    writeFileSync(join(CACHE, 'report-screenshot.png'), page.screenshot);
    console.log(`report screenshot: ${join(CACHE, 'report-screenshot.png')} (${shot.width}x${shot.height})`);
  });

  it('reads well on a narrow window: no sideways scrolling at 720 pixels', async () => {
    const file = writeReport(join(CACHE, 'report-test.html'), fullReport().data);
    const page = await checkPage(browser, pathToFileURL(file).href, 720);
    expect(page.errors).toEqual([]);
    expect(page.width).toBe(720);
  });

  it("evaluate's sections (provenance, worst errors, saliency figures and notes) load, decode and fit 720 pixels", async () => {
    const { probs, labels } = predictions();
    const spot = Float32Array.from({ length: 40 * 40 }, (_, p) => Math.max(0, 8 - Math.hypot((p % 40) - 20, Math.floor(p / 40) - 20)));
    const seen = { width: 40, height: 40, data: new Uint8Array(40 * 40 * 3).fill(180) };
    const fig = saliencyFigure(seen, spot, { sourceWidth: 80, sourceHeight: 80 }) as { png: Buffer };
    const data: ReportData = {
      ...buildEvaluationReport({ probs, labels, classNames: CLASSES, dataLabel: 'evaluated', title: 'incept evaluate: model.safetensors' }),
      provenance: [
        { label: 'Base model', value: 'a/very/long/path/'.repeat(12) + 'inception_v3.ckpt (TensorFlow checkpoint)' },
        { label: '  train split', value: '160 (benign 80, malignant 80)' },
      ],
      evaluated: 'User-supplied data: 20 images from /somewhere.',
      worstErrors: {
        rows: [0, 1, 2].map((i) => ({ file: `/data/${'deep/'.repeat(20)}lesion_${i}.png`, thumbnail: lesionPng(i, true), trueLabel: 'malignant', predictedLabel: 'benign', probability: 0.9, trueProbability: 0.1 })),
        wrong: 3,
        total: 20,
        predictionsFile: '/tmp/predictions.json',
      },
      saliency: {
        items: [{ name: 'lesion_0.png', image: lesionPng(0, true), trueLabel: 'malignant', predictedLabel: 'benign', explained: 'benign', probability: 0.9, maps: [{ method: 'Grad-CAM', note: 'map is all zeros (dead layer): nothing to draw' }, { method: 'gradient of the loss', png: fig.png }] }],
      },
    };
    mkdirSync(CACHE, { recursive: true });
    const file = writeReport(join(CACHE, 'report-evaluate-test.html'), data);
    for (const width of [1280, 720]) {
      const page = await checkPage(browser, pathToFileURL(file).href, width);
      expect(page.errors, `browser errors; chromium said:\n${browser.lastOutput}`).toEqual([]);
      expect(page.sections).toEqual(['provenance', 'summary', 'roc', 'confusion', 'worst-errors', 'saliency']); // evaluate drops 'summary'; the demo keeps it
      for (const im of page.images) expect(im, im.alt).toMatchObject({ complete: true, decoded: true });
      expect(page.width).toBe(width); // nothing sticks out sideways
    }
  });

  it('the check itself fails on a broken page (corrupt image, outside references)', async () => {
    const file = join(CACHE, 'report-test-broken.html');
    writeFileSync(
      file,
      `<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:"><title>broken</title>` +
        '<img src="data:image/png;base64,iVBORw0KGgoAAAA" alt="corrupt"><img src="http://example.invalid/a.png" alt="remote"><img src="missing.png" alt="missing">',
    );
    const page = await checkPage(browser, pathToFileURL(file).href);
    expect(page.images.map((im) => [im.alt, im.decoded, im.naturalWidth])).toEqual([
      ['corrupt', false, 0],
      ['remote', false, 0],
      ['missing', false, 0],
    ]);
    expect(page.errors.join('\n')).toMatch(/example\.invalid\/a\.png[\s\S]*missing\.png/);
  });
});
