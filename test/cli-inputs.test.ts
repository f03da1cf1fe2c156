// Long file lists (issue 14, item 2): classify and saliency take folders (recursively), glob
// patterns and --list FILE ('-': standard input); evaluate reads a manifest from standard input;
// the launcher says how a child ended when it died without a word.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClassifyArgs } from '../src/cli/classify.ts';
import { collectImages, expandGlob } from '../src/cli/inputs.ts';
import { parseSaliencyArgs } from '../src/cli/saliency.ts';

const BIN = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
const QUIET = fileURLToPath(new URL('../scripts/quiet-dawn.mjs', import.meta.url));
// tsx by path: the child runs in a temporary folder, outside this package.
const TSX = import.meta.resolve('tsx');
let dir = '';
const at = (...p: string[]) => join(dir, ...p);

function png(path: string, v: number): void {
  const p = new PNG({ width: 80, height: 80 });
  for (let i = 0; i < p.data.length; i++) p.data[i] = (i * v) % 251;
  writeFileSync(path, PNG.sync.write(p));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-inputs-'));
  for (const d of ['a/b', 'a/.hidden', 'c', 'empty']) mkdirSync(at(d), { recursive: true });
  png(at('a', '1.png'), 3);
  png(at('a', 'b', '2.png'), 5);
  png(at('a', '.hidden', '3.png'), 7);
  png(at('c', 'x.png'), 11);
  png(at('c', 'y.png'), 13);
  writeFileSync(at('a', 'notes.txt'), 'not an image');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('images by folder, pattern and list', () => {
  it('a folder gives its images recursively, hidden ones and other files left out', () => {
    expect(collectImages('classify', [at('a')], null)).toEqual([at('a', '1.png'), at('a', 'b', '2.png')]);
    expect(() => collectImages('classify', [at('empty')], null)).toThrow(`classify: ${at('empty')}: no PNG or JPEG images in this folder`);
  });

  it('glob patterns: *, ?, [..] and ** for any depth; a pattern matching nothing is an error', () => {
    expect(expandGlob(at('c', '?.png'))).toEqual([at('c', 'x.png'), at('c', 'y.png')]);
    expect(expandGlob(at('c', '[y].png'))).toEqual([at('c', 'y.png')]);
    expect(collectImages('classify', [at('**', '*.png')], null)).toEqual([at('a', '1.png'), at('a', 'b', '2.png'), at('c', 'x.png'), at('c', 'y.png')]);
    expect(() => collectImages('saliency', [at('c', '*.jpg')], null)).toThrow(`saliency: no PNG or JPEG images match '${at('c', '*.jpg')}'`);
  });

  it('--list FILE: paths, folders and patterns, one a line, comments skipped; the parsers take it', () => {
    const list = at('list.txt');
    writeFileSync(list, `# my images\n${at('c', 'x.png')}\n\n${at('a')}\n${at('c', 'y*')}\n`);
    const want = [at('c', 'x.png'), at('a', '1.png'), at('a', 'b', '2.png'), at('c', 'y.png')];
    expect(parseClassifyArgs(['--list', list, '--model', 'random:inception_v3']).images).toEqual(want);
    expect(parseSaliencyArgs([at('c', 'x.png'), '--list', list, '--model', 'm', '--out', 'o']).images).toEqual([at('c', 'x.png'), ...want]);
    expect(() => parseClassifyArgs(['--list', at('nope.txt'), '--model', 'm'])).toThrow(`classify: --list ${at('nope.txt')}: cannot read (no such file)`);
  });

  it('the command line: classify --list - reads the list on standard input (relative paths from the current folder)', () => {
    const input = `${relative(dir, at('c'))}\n${relative(dir, at('a', '*.png'))}\n`;
    const args = [BIN, 'classify', '--list', '-', '--model', 'random:inception_v3', '--input-size', '75', '--depth-multiplier', '0.1', '--num-classes', '3', '--json'];
    // Not as an npm script: the launcher would then run from npm's INIT_CWD.
    const env = { ...process.env, npm_lifecycle_event: '', INIT_CWD: '' };
    const r = spawnSync(process.execPath, args, { cwd: dir, env, input, encoding: 'utf8', timeout: 240_000 });
    expect(r.stderr).toMatch(/random weights/);
    expect(r.status).toBe(0);
    const files = (JSON.parse(r.stdout) as { file: string }[]).map((x) => x.file);
    expect(files).toEqual([join('c', 'x.png'), join('c', 'y.png'), join('a', '1.png')]);
  }, 300_000);
});

describe('evaluate --data -', () => {
  it('reads the manifest from standard input, paths relative to the current folder', () => {
    const code = `const { readDataset } = await import(${JSON.stringify(fileURLToPath(new URL('../src/train/dataset.ts', import.meta.url)))});
const ds = readDataset('-');
console.log(JSON.stringify({ classes: ds.classes, paths: ds.samples.map((s) => s.path), source: ds.source }));`;
    const input = 'path,label\nc/x.png,cat\nc/y.png,dog\na/1.png,cat\n';
    const r = spawnSync(process.execPath, ['--import', TSX, '--input-type=module', '-e', code], { cwd: dir, input, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ classes: ['cat', 'dog'], paths: [at('c', 'x.png'), at('c', 'y.png'), at('a', '1.png')], source: 'standard input' });
  });
});

describe('the launcher', () => {
  it('says how a child ended that died without a word, and keeps its status', () => {
    const killed = spawnSync(process.execPath, [QUIET, '-e', "process.kill(process.pid, 'SIGKILL')"], { encoding: 'utf8' });
    expect(killed.status).toBe(137);
    expect(killed.stderr).toMatch(/^incept: error: the process was killed \(SIGKILL\) without a message/);
    const silent = spawnSync(process.execPath, [QUIET, '-e', 'process.exit(3)'], { encoding: 'utf8' });
    expect(silent.status).toBe(3);
    expect(silent.stderr).toBe('incept: error: the process exited with status 3 without a message\n');
    const spoke = spawnSync(process.execPath, [QUIET, '-e', "console.error('incept: error: mine'); process.exit(1)"], { encoding: 'utf8' });
    expect(spoke.stderr).toBe('incept: error: mine\n');
  });
});
