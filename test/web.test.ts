// The engine in a page (issue 15): the browser bundle has no Node in it; in headless Chromium
// (WebGPU on SwiftShader) the page loads without console errors, the kernels Inception v3 uses and a
// thin Inception v3 agree with Node's results on the same inputs to 1e-4 (with subgroups and
// without), a small model fine-tunes in the page with a falling loss, a TF.js model.json chosen with
// its shards classifies as in Node, and bad files get one message naming them while the page keeps
// working. The browser part skips, saying why, without Chromium.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_ONLY, buildBrowser } from '../scripts/build.mjs';
import { HEADLESS_FLAGS, ensureChromium } from '../scripts/chromium.mjs';
import { serve } from '../scripts/web.mjs';
import * as incept from '../src/index.ts';
import * as kernels from '../src/kernels/index.ts';
import { inceptionCases } from './browser-cases.js';
import { expectClose } from './helpers.ts';
import { randomizeWeights, tfCpu, writeTfjsModel } from './tfjs-files.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** dir/<class>/<image>: PNGs and a baseline JPEG in two class folders, and a text file; returns the images' bytes. */
function writeClassFolders(dir: string): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  const rgba = (w: number, h: number, f: (x: number, y: number) => number[]) => {
    const data = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([...f(x, y), 255], (y * w + x) * 4);
    return data;
  };
  for (const [cls, shape] of [['disc', (x: number, y: number) => Math.hypot(x - 20, y - 18) < 12], ['stripes', (x: number, y: number) => Math.floor((x + y) / 6) % 2 === 0]] as const) {
    mkdirSync(join(dir, cls));
    for (let i = 0; i < 3; i++) {
      const png = new PNG({ width: 40, height: 36 });
      png.data.set(rgba(40, 36, (x, y) => (shape(x, y) ? [200 - i * 20, 60, 40 + i * 30] : [230, 220, 200])));
      files[`${cls}/${cls}_${i}.png`] = PNG.sync.write(png);
    }
    const jpg = jpeg.encode({ width: 40, height: 36, data: rgba(40, 36, (x, y) => (shape(x, y) ? [180, 70, 60] : [220, 225, 210])) }, 90).data;
    files[`${cls}/${cls}_photo.jpg`] = new Uint8Array(jpg);
  }
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
  writeFileSync(join(dir, 'disc', 'notes.txt'), 'not an image');
  return files;
}

describe('browser bundle', () => {
  it('imports no Node built-in, and carries every shader and .proto schema inline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-bundle-'));
    try {
      const { path, imports } = await buildBrowser({ outfile: join(dir, 'incept.js') }); // fails itself if Node code is reachable
      expect(imports, 'modules the bundle imports at run time').toEqual([]);
      // And by its text: no import of a Node module, no require() left (esbuild keeps those it cannot resolve).
      const text = readFileSync(path, 'utf8');
      const named = [...text.matchAll(/\b(?:from|import)\s*["']([^"']+)["']|\brequire\s*\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1] ?? m[2]);
      expect(named.filter((s) => NODE_ONLY.test(s)), 'Node modules named by the bundle').toEqual([]);
      expect(text).toContain('incept.onnx'); // the ONNX schema's package name
      expect(text).toMatch(/@compute\s*@workgroup_size/); // WGSL entry points
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const chromium = ensureChromium({ quiet: true });
if (!chromium.path) console.warn(`web.test.ts: the browser checks are skipped: ${chromium.reason}`);

describe.skipIf(!chromium.path)('the page in headless Chromium (WebGPU on SwiftShader)', () => {
  let browser: Browser;
  let page: Page;
  let close: () => void;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    await buildBrowser();
    const { server, url } = await serve(0);
    close = () => server.close();
    const { chromium: pw } = await import('playwright-core');
    const args = [...HEADLESS_FLAGS.filter((f) => f !== '--headless'), '--enable-unsafe-webgpu'];
    browser = await pw.launch({ executablePath: chromium.path!, headless: true, args });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
    await page.goto(url);
    await page.waitForFunction("document.body.dataset.state !== 'loading'", null, { timeout: 60_000 });
  });

  afterAll(async () => {
    await browser?.close();
    close?.();
    await incept.closeRuntime();
  });

  /** Clicks a button and waits until the page's action finished. */
  async function press(selector: string, timeout = 300_000): Promise<void> {
    await page.click(selector);
    await page.waitForFunction("document.body.dataset.state === 'ready'", null, { timeout });
  }
  const errorsShown = () => page.$$eval('#errors li', (lis) => lis.map((li) => li.textContent ?? ''));

  it('loads with no console errors and gets a WebGPU adapter', async () => {
    expect(await page.getAttribute('body', 'data-state')).toBe('ready');
    expect(await page.textContent('#adapter')).toMatch(/^WebGPU adapter: /);
    expect(consoleErrors, consoleErrors.join("\n")).toEqual([]);
  });

  it("runs Inception v3's kernels and a thin Inception v3 as Node does, to 1e-4, with and without subgroups", async () => {
    const rt = await incept.getRuntime();
    // Node side: the library and its kernels ('incept' and 'incept/kernels'); the bundle carries both.
    const expected = await inceptionCases({ ...incept, ...kernels }, rt);
    const inPage = await page.evaluate(async (source: string) => {
      const lib = (globalThis as any).incept;
      const cases = (0, eval)(`(${source})`);
      const withSubgroups = await lib.getRuntime();
      // A second device without optional features: the kernels' variants without subgroups.
      const adapter = await (globalThis as any).navigator.gpu.requestAdapter();
      const device = await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize } });
      const plain = new lib.Runtime((globalThis as any).navigator.gpu, adapter, device);
      const result = { subgroups: withSubgroups.features.has('subgroups'), a: await cases(lib, withSubgroups), b: await cases(lib, plain), plainSubgroupSize: plain.subgroupSize };
      plain.destroy(); // the runtime's own destroy: a device destroyed behind its back is a loss (and an error on the console)
      return result;
    }, inceptionCases.toString());
    expect(inPage.plainSubgroupSize).toBe(1);
    for (const [variant, got] of [['subgroups', inPage.a], ['no subgroups', inPage.b]] as const) {
      expect(Object.keys(got)).toEqual(Object.keys(expected));
      for (const [name, values] of Object.entries(expected)) expectClose(got[name], values, { rtol: 1e-4, atol: 1e-4 }, `${name} (page, ${variant})`);
    }
    console.log(`page adapter has subgroups: ${inPage.subgroups}; ${Object.keys(expected).length} cases agree with Node (rtol 1e-4, atol 1e-4)`);
  });

  it('says which file is wrong and what is wrong, once, and the page keeps working', async () => {
    const bad = [
      { input: '#model-file', name: 'broken.onnx', bytes: [0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0x0f, 0x01], match: /^broken\.onnx: / },
      { input: '#model-file', name: 'notes.safetensors', bytes: [...Buffer.from('these are not weights')], match: /^notes\.safetensors: / },
      { input: '#image-files', name: 'holiday.jpg', bytes: [0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 1, 2, 3], match: /^holiday\.jpg: / },
      { input: '#image-files', name: 'anim.gif', bytes: [...Buffer.from('GIF89a....')], match: /^anim\.gif: GIF images are not supported/ },
    ];
    for (const b of bad) {
      await page.setInputFiles(b.input, { name: b.name, mimeType: 'application/octet-stream', buffer: Buffer.from(b.bytes) });
      await page.waitForFunction("document.body.dataset.state === 'ready' && document.querySelectorAll('#errors li').length > 0", null, { timeout: 60_000 });
      const shown = await errorsShown();
      expect(shown, b.name).toHaveLength(1);
      expect(shown[0], b.name).toMatch(b.match);
    }
    await press('#tiny-model'); // still usable
    expect(await errorsShown()).toEqual([]);
    expect(await page.textContent('#model-info')).toMatch(/input 75x75x3/);
  });

  it("opens a model file in the page, and the bundle's loadModel + classify give Node's predictions", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-model-'));
    try {
      const options = { numClasses: 3, depthMultiplier: 0.1, inputSize: 75, auxLogits: false, seed: 9 };
      const modelFile = join(dir, 'tiny.safetensors');
      incept.saveModel(modelFile, incept.inceptionV3({ ...options, batch: 1 }), { architecture: 'inception_v3', options, classes: ['apple', 'banana', 'cherry'] });
      const image = writeClassFolders(dir)['disc/disc_photo.jpg'];
      await page.setInputFiles('#model-file', modelFile);
      await page.waitForFunction("document.body.dataset.state === 'ready'", null, { timeout: 60_000 });
      expect(await errorsShown()).toEqual([]);
      expect(await page.textContent('#model-info')).toMatch(/^tiny\.safetensors: input 75x75x3, output 'Predictions' \(3 named classes\)/);
      const [expected] = await incept.classify(await incept.loadModel(modelFile), image, { top: 3 });
      const got = await page.evaluate(
        async ([model, jpg]) => {
          const lib = (globalThis as any).incept;
          const bytes = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const m = await lib.loadModel(new File([bytes(model)], 'tiny.safetensors'));
          const [top] = await lib.classify(m, new File([bytes(jpg)], 'photo.jpg'), { top: 3 });
          m.model.dispose();
          return top;
        },
        [readFileSync(modelFile).toString('base64'), Buffer.from(image).toString('base64')] as const,
      );
      expect(got.map((p: { label: string }) => p.label)).toEqual(expected.map((p) => p.label));
      got.forEach((p: { prob: number }, i: number) => expect(Math.abs(p.prob - expected[i].prob)).toBeLessThan(1e-4));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("exports a model opened in the page as ONNX, byte for byte what Node's exportOnnx writes", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-export-'));
    try {
      const options = { numClasses: 3, depthMultiplier: 0.1, inputSize: 75, auxLogits: false, seed: 9 };
      const modelFile = join(dir, 'tiny.safetensors');
      incept.saveModel(modelFile, incept.inceptionV3({ ...options, batch: 1 }), { architecture: 'inception_v3', options, classes: ['apple', 'banana', 'cherry'] });
      const loaded = await incept.loadModel(modelFile);
      const expected = Buffer.from(incept.exportOnnx(loaded.model.graph));
      loaded.model.dispose();
      const got = await page.evaluate(async (model: string) => {
        const lib = (globalThis as any).incept;
        const m = await lib.loadModel(new File([Uint8Array.from(atob(model), (c) => c.charCodeAt(0))], 'tiny.safetensors'));
        await m.model.syncToHost();
        const bytes: Uint8Array = lib.exportOnnx(m.model.graph);
        m.model.dispose();
        let s = '';
        for (const b of bytes) s += String.fromCharCode(b);
        return btoa(s);
      }, readFileSync(modelFile).toString('base64'));
      expect(expected.length).toBeGreaterThan(100_000);
      expect(Buffer.from(got, 'base64').equals(expected)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("opens a TF.js model.json with its shards in the page, and loadModelFiles + classify give Node's predictions", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-tfjs-'));
    try {
      // A small Keras image classifier written by TF.js itself: model.json + two weight shards.
      await tfCpu();
      const L = tf.layers;
      const input = tf.input({ shape: [32, 32, 3], name: 'image' });
      let x = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, activation: 'relu', name: 'conv' }).apply(input) as tf.SymbolicTensor;
      x = L.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
      x = L.dense({ units: 3, activation: 'softmax', name: 'probs' }).apply(x) as tf.SymbolicTensor;
      const keras = tf.model({ inputs: input, outputs: x, name: 'tiny_keras' });
      randomizeWeights(keras, 5);
      const modelJson = await writeTfjsModel(keras, join(dir, 'tfjs'), 'float32', 2);
      const files = ['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin'].map((f) => join(dir, 'tfjs', f));
      const image = writeClassFolders(dir)['stripes/stripes_photo.jpg'];

      await page.setInputFiles('#model-file', files); // the demo page: several files are one TF.js model
      await page.waitForFunction("document.body.dataset.state === 'ready'", null, { timeout: 60_000 });
      expect(await errorsShown()).toEqual([]);
      expect(await page.textContent('#model-info')).toMatch(/^model\.json: input 32x32x3, output 'probs' \(3 classes\)/);

      const [expected] = await incept.classify(await incept.loadModel(modelJson), image, { top: 3 });
      const got = await page.evaluate(
        async ([named, jpg]) => {
          const lib = (globalThis as any).incept;
          const bytes = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const m = await lib.loadModelFiles(named.map(([name, b64]) => new File([bytes(b64)], name)));
          const [top] = await lib.classify(m, new File([bytes(jpg)], 'photo.jpg'), { top: 3 });
          m.model.dispose();
          // model.json alone: an error saying to pass the shards too.
          const alone = await lib.loadModel(new File([bytes(named[0][1])], 'model.json')).then(() => 'opened', (e: Error) => e.message);
          return { top, alone };
        },
        [files.map((f) => [basename(f), readFileSync(f).toString('base64')]), Buffer.from(image).toString('base64')] as const,
      );
      expect(got.alone).toMatch(/^model\.json: a JSON file: a TF\.js model\.json needs its weight shards/);
      expect(got.top.map((p: { label: string }) => p.label)).toEqual(expected.map((p) => p.label));
      got.top.forEach((p: { prob: number }, i: number) => expect(Math.abs(p.prob - expected[i].prob)).toBeLessThan(1e-4));
      console.log(`web.test.ts: TF.js model in the page: top-3 ${got.top.map((p: { label: string; prob: number }) => `${p.label} ${p.prob.toFixed(6)}`).join(', ')}; Node ${expected.map((p) => `${p.label} ${p.prob.toFixed(6)}`).join(', ')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('decodes a folder of class folders (PNG and JPEG) to the pixels Node decodes, skipping other files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-classes-'));
    try {
      const files = writeClassFolders(dir);
      await page.setInputFiles('#image-folder', dir);
      await page.waitForFunction("document.body.dataset.state === 'ready'", null, { timeout: 60_000 });
      expect(await errorsShown()).toEqual([]);
      const got: { name: string; label: string; data: number[] }[] = await page.evaluate(() =>
        (globalThis as any).inceptPage.images.map((x: any) => ({ name: x.name, label: x.label, data: Array.from(x.image.data) })),
      );
      expect(got.map((x) => `${x.label}/${x.name}`).sort()).toEqual(Object.keys(files).sort()); // notes.txt left out
      for (const x of got) expect(x.data, x.name).toEqual(Array.from(incept.decodeImage(files[`${x.label}/${x.name}`], x.name).data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fine-tunes a new head on sample images in the page: the loss falls; a screenshot is saved', async () => {
    await press('#tiny-model');
    await press('#sample-images');
    await press('#classify-btn');
    expect(await page.$$eval('#predictions tr', (rows) => rows.length)).toBe(9); // header + 8 images
    await page.fill('#steps', '8');
    await press('#train-btn');
    expect(await errorsShown()).toEqual([]);
    const losses: number[] = await page.evaluate(() => (globalThis as any).inceptPage.losses);
    expect(losses).toHaveLength(8);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[7]).toBeLessThan(losses[0]);
    expect(await page.textContent('#roc-info')).toMatch(/AUC \d\.\d{3}/);
    await press('#saliency-btn');
    expect(await page.$$eval('#saliency-list canvas', (c) => c.length)).toBe(4);
    const dir = join(ROOT, 'out', 'web-test');
    mkdirSync(dir, { recursive: true });
    const shot = join(dir, 'page.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`web.test.ts: fine-tuning losses ${losses.map((l) => l.toFixed(4)).join(' ')}; screenshot of the page: ${shot}`);
    expect(consoleErrors, consoleErrors.join("\n")).toEqual([]);
  });
});
