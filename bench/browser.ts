// Browser suite: the same Inception v3 forward and head fine-tuning step (bench/browser-measure.js)
// in Node (Dawn on this machine's adapter) and in headless Chromium's WebGPU (SwiftShader here),
// through the page's bundle. ms is the browser's time, peer_ms Node's.
//
//   npm run bench -- browser [--json FILE] [--size N] [--batch N] [--train-batch N] [--runs N]
import { HEADLESS_FLAGS, ensureChromium } from '../scripts/chromium.mjs';
import { buildBrowser } from '../scripts/build.mjs';
import { serve } from '../scripts/web.mjs';
import * as incept from '../src/index.ts';
import { measureInception } from './browser-measure.js';
import { type CaseResult, type Report, UsageError, result } from './report.ts';

type Timings = Awaited<ReturnType<typeof measureInception>>;

function parse(argv: string[]): { size: number; batch: number; trainBatch: number; runs: number } {
  const o = { size: 299, batch: 1, trainBatch: 2, runs: 3 };
  const flags: Record<string, keyof typeof o> = { '--size': 'size', '--batch': 'batch', '--train-batch': 'trainBatch', '--runs': 'runs' };
  for (let i = 0; i < argv.length; i++) {
    const key = flags[argv[i]];
    const v = Number(argv[++i]);
    if (!key || !Number.isInteger(v) || v < 1) throw new UsageError(`browser suite: bad option ${argv[i - 1]} ${argv[i] ?? ''}`);
    o[key] = v;
  }
  return o;
}

async function inChromium(opts: ReturnType<typeof parse>): Promise<{ adapter: string; t: Timings }> {
  const chromium = ensureChromium({ quiet: true });
  if (!chromium.path) throw new Error(`no Chromium: ${chromium.reason}`);
  await buildBrowser();
  const { server, url } = await serve(0);
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({ executablePath: chromium.path, headless: true, args: [...HEADLESS_FLAGS.filter((f) => f !== '--headless'), '--enable-unsafe-webgpu'] });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction("document.body.dataset.state !== 'loading'", null, { timeout: 60_000 });
    page.setDefaultTimeout(0);
    return await page.evaluate(
      async ([source, o]) => {
        const lib = (globalThis as any).incept;
        const rt = await lib.getRuntime();
        const t = await (0, eval)(`(${source})`)(lib, rt, o);
        return { adapter: rt.adapterName as string, t };
      },
      [measureInception.toString(), opts] as const,
    );
  } finally {
    await browser.close();
    server.close();
  }
}

export async function run(argv: string[]): Promise<Report> {
  const opts = parse(argv);
  const rt = await incept.getRuntime();
  const node = await measureInception(incept, rt, opts);
  const page = await inChromium(opts);
  const peer = (ms: number) => ({ name: `Node (${rt.adapterName})`, ms });
  const s = `${opts.size}x${opts.size}`;
  const cases: CaseResult[] = [
    result(`forward ${s} batch ${opts.batch}, first run`, null, page.t.forwardFirst, peer(node.forwardFirst), null),
    result(`forward ${s} batch ${opts.batch}`, null, page.t.forward, peer(node.forward), null),
    result(`head step ${s} batch ${opts.trainBatch}, first`, null, page.t.stepFirst, peer(node.stepFirst), null),
    result(`head step ${s} batch ${opts.trainBatch}`, null, page.t.step, peer(node.step), null),
  ];
  console.log(`losses: node ${node.losses.map((l: number) => l.toFixed(4)).join(' ')}; page ${page.t.losses.map((l: number) => l.toFixed(4)).join(' ')}`);
  return { suite: 'browser', adapter: `Chromium: ${page.adapter}; Node: ${rt.adapterName}`, timing: 'wall clock (upload to readback), median of --runs after the first', cases };
}
