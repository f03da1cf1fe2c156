// Streaming (issue 14, item 3): classify decodes and runs images batch by batch, so resident
// memory stays flat over a long list of images; per-image results go to a JSONL or CSV file as
// each batch completes, so a killed run keeps what it did; the progress line shows rate and ETA.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatImageProgress, isTerminal } from '../src/cli/stream.ts';
import { tinyGraphDef } from './model-files.ts';

const CLASSIFY = fileURLToPath(new URL('../src/cli/classify.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
let dir = '';
const at = (...p: string[]) => join(dir, ...p);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-stream-'));
  const p = new PNG({ width: 16, height: 16 });
  for (let i = 0; i < p.data.length; i++) p.data[i] = (i * 37) % 256;
  writeFileSync(at('img.png'), PNG.sync.write(p));
  writeFileSync(at('tiny.pb'), tinyGraphDef({ unknownSize: true }));
  // classify in a child that prints its peak resident memory (kB) when done.
  writeFileSync(
    at('run.mts'),
    `const { classifyMain } = await import(${JSON.stringify(CLASSIFY)});
console.log = () => {};
await classifyMain(process.argv.slice(2));
process.stdout.write(String(process.resourceUsage().maxRSS));
process.exit(0);`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A list of n lines naming the same small image; each is decoded and resized to 128x128. */
function list(n: number): string {
  const f = at(`list-${n}.txt`);
  writeFileSync(f, `${at('img.png')}\n`.repeat(n));
  return f;
}

const args = (n: number, results: string) => ['--list', list(n), '--model', at('tiny.pb'), '--size', '128x128', '--batch', '16', '--progress', 'none', '--results', results];

function classifyChild(n: number, results: string): ChildProcess {
  return spawn(process.execPath, ['--import', TSX, at('run.mts'), ...args(n, results)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function peakKb(n: number, results: string): Promise<number> {
  const child = classifyChild(n, results);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += String(c)));
  child.stderr!.on('data', (c) => (err += String(c)));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  expect(err.replace(/^Warning: maxDynamic.*\n/gm, '')).toBe('');
  expect(code).toBe(0);
  return Number(out);
}

const lines = (f: string) => readFileSync(f, 'utf8').trim().split('\n');

describe('classify streams', () => {
  it('resident memory is flat: 800 images peak within 60 MB of 100 (all preprocessed at once would add ~140 MB)', async () => {
    const small = await peakKb(100, at('r100.jsonl'));
    const large = await peakKb(800, at('r800.csv'));
    // JSON lines: one per image; CSV: a header, then one row per image and rank (5 classes, top 5).
    expect(lines(at('r100.jsonl'))).toHaveLength(100);
    expect(JSON.parse(lines(at('r100.jsonl'))[0]).file).toBe(at('img.png'));
    const csv = lines(at('r800.csv'));
    expect(csv[0]).toBe('file,rank,index,label,prob');
    expect(csv).toHaveLength(1 + 800 * 5);
    expect((large - small) / 1024).toBeLessThan(60);
  }, 600_000);

  it('a run killed midway keeps the results of the batches it finished', async () => {
    const results = at('killed.jsonl');
    const child = classifyChild(20000, results);
    await new Promise<void>((res, rej) => {
      const poll = setInterval(() => {
        if (existsSync(results) && lines(results).length >= 64) {
          clearInterval(poll);
          child.kill('SIGKILL');
          res();
        }
      }, 200);
      child.on('close', () => {
        clearInterval(poll);
        rej(new Error('the run ended before it was killed'));
      });
    });
    await new Promise((res) => child.on('close', res));
    const kept = readFileSync(results, 'utf8').split('\n').filter((l) => l !== '');
    expect(kept.length).toBeGreaterThanOrEqual(64);
    expect(kept.length).toBeLessThan(20000);
    // Every line but perhaps a torn last one is a whole record.
    for (const l of kept.slice(0, -1)) expect(JSON.parse(l).top).toHaveLength(5);
  }, 600_000);
});

describe('the progress line', () => {
  it('shows the count, the share, a bar, the rate and the time left', () => {
    expect(formatImageProgress(370, 1000, 30)).toBe('images 370/1000  37% [#######.............] 12.3 img/s ETA 0:51');
    expect(formatImageProgress(0, 10, 0)).toBe('images 0/10   0% [....................] 0.0 img/s ETA ?');
  });

  it("stderr behind bin/incept.js's filter counts as a terminal when the launcher says so", () => {
    const before = process.env.INCEPT_STDERR_TTY;
    try {
      process.env.INCEPT_STDERR_TTY = '1';
      expect(isTerminal(process.stderr)).toBe(true);
      process.env.INCEPT_STDERR_TTY = '0';
      expect(isTerminal(process.stderr)).toBe(process.stderr.isTTY === true);
      expect(isTerminal({ isTTY: false } as NodeJS.WriteStream)).toBe(false);
    } finally {
      if (before === undefined) delete process.env.INCEPT_STDERR_TTY;
      else process.env.INCEPT_STDERR_TTY = before;
    }
  });
});
