// The npm package (issue 15): `npm pack` gives a tarball that another project installs without the
// network and uses from plain Node (compiled JavaScript, no tsx: `import { loadModel, classify }
// from 'incept'` on a model file and an image), from TypeScript (the declarations type its calls),
// and from a bundler targeting the browser (which picks the browser bundle, free of Node).
//
// Offline install: the repository's package-lock.json pins every dependency (version + integrity),
// so the test writes the temporary project a lock file of the same entries and `npm ci --offline`
// takes the tarballs from the npm cache that installed this checkout.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classify, closeRuntime, inceptionV3, loadModel, saveModel } from '../src/index.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });

/** package.json + package-lock.json of a project depending on the tarball, its dependencies pinned as here. */
function writeProject(dir: string, tarball: string): void {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const spec = `file:${tarball}`;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(join(dir, tarball))).digest('base64')}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { incept: spec } },
    'node_modules/incept': { version: pkg.version, resolved: spec, integrity, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [path, entry] of Object.entries(lock.packages as Record<string, { dev?: boolean; link?: boolean; version: string }>)) {
    if (!path.startsWith('node_modules/') || entry.dev || entry.link) continue; // the package's own dependencies only
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    packages[path] = { resolved: `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${entry.version}.tgz`, ...entry };
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true, dependencies: { incept: spec } }, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));
}

/** A 90x90 PNG: a red disc on grey. */
function writePng(path: string): void {
  const png = new PNG({ width: 90, height: 90 });
  for (let y = 0; y < 90; y++) {
    for (let x = 0; x < 90; x++) {
      const inside = Math.hypot(x - 45, y - 40) < 25;
      png.data.set(inside ? [200, 40, 30, 255] : [128, 128, 128, 255], (y * 90 + x) * 4);
    }
  }
  writeFileSync(path, PNG.sync.write(png));
}

describe('npm package', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'incept-package-'));
    // prepack builds dist/ (its lines come first on stdout); npm's JSON follows.
    const out = run(npm, ['pack', '--json', '--pack-destination', dir], ROOT);
    const packed = JSON.parse(out.slice(out.search(/^\[/m))) as { filename: string }[];
    writeProject(dir, packed[0].filename);
    run(npm, ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], dir);
    const options = { numClasses: 3, depthMultiplier: 0.1, inputSize: 75, auxLogits: false, seed: 5 };
    saveModel(join(dir, 'tiny.safetensors'), inceptionV3({ ...options, batch: 1 }), {
      architecture: 'inception_v3',
      options,
      classes: ['apple', 'banana', 'cherry'],
    });
    writePng(join(dir, 'disc.png'));
  }, 300_000);
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await closeRuntime();
  });

  it('classifies a model file and an image from plain Node, with the compiled package (no tsx)', async () => {
    const script = `import { loadModel, classify, closeRuntime } from 'incept';
const model = await loadModel('tiny.safetensors');
const [top] = await classify(model, 'disc.png', { top: 3 });
console.log(JSON.stringify({ resolved: import.meta.resolve('incept'), top }));
await closeRuntime();
`;
    writeFileSync(join(dir, 'main.mjs'), script);
    const out = JSON.parse(run(process.execPath, ['main.mjs'], dir).trim().split('\n').pop()!);
    expect(out.resolved).toMatch(/node_modules\/incept\/dist\/index\.js$/);
    // The same call on the sources, in this process.
    const [expected] = await classify(await loadModel(join(dir, 'tiny.safetensors')), join(dir, 'disc.png'), { top: 3 });
    expect(out.top.map((p: { label: string }) => p.label)).toEqual(expected.map((p) => p.label));
    out.top.forEach((p: { prob: number }, i: number) => expect(p.prob).toBeCloseTo(expected[i].prob, 6));
    expect(expected.every((p) => ['apple', 'banana', 'cherry'].includes(p.label))).toBe(true);
  });

  it("types the package's API for TypeScript users", () => {
    writeFileSync(
      join(dir, 'check.ts'),
      `import { classify, loadModel, type Prediction } from 'incept';
const model = await loadModel('tiny.safetensors');
const top: Prediction[][] = await classify(model, 'disc.png');
const label: string = top[0][0].label;
// @ts-expect-error a number is not an image
await classify(model, 42);
export { label };
`,
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const args = ['--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', '@webgpu/types', 'check.ts'];
    expect(() => run(process.execPath, [tsc, ...args], dir)).not.toThrow();
  });

  it('gives a bundler for the browser the browser build: one ES module with nothing of Node', async () => {
    writeFileSync(join(dir, 'page.js'), `import { loadModel, classify } from 'incept';\nwindow.run = async (file, image) => classify(await loadModel(file), image);\n`);
    const esbuild = await import('esbuild');
    const r = await esbuild.build({ entryPoints: [join(dir, 'page.js')], bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent', absWorkingDir: dir });
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs).toContain('node_modules/incept/dist/browser/incept.js');
    expect(inputs.filter((i) => i.includes('node_modules/') && !i.startsWith('node_modules/incept/'))).toEqual([]);
    expect(Object.values(r.metafile.outputs).flatMap((o) => o.imports)).toEqual([]);
  });
});
