#!/usr/bin/env node
// `npm run build`: the two builds of the package.
//   dist/            the library compiled for Node (tsc: JavaScript + type declarations), used by
//                    `import 'incept'` and the `incept` command once installed from npm;
//   dist/browser/incept.js  one ES module for pages (esbuild): src/browser.ts with every WGSL shader
//                    and .proto schema inlined and src/platform/host.browser.ts in place of host.ts.
// The browser build fails, naming the chain of imports, when anything Node-only (a node: module,
// Dawn's 'webgpu', pngjs) would end up in the bundle.
//
//   node scripts/build.mjs [--browser-only] [--no-minify]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE = join(ROOT, 'dist/browser/incept.js');

/** Modules that exist only in Node; the bundle must not need them. */
export const NODE_ONLY = /^(node:.*|fs|fs\/promises|path|os|url|util|zlib|stream|crypto|http|https|net|tls|child_process|worker_threads|module|buffer|assert|events|webgpu|pngjs)$/;

/** Every text asset the engine reads through assetText(): path from the package root -> text. */
export function textAssets() {
  const assets = {};
  const add = (dir, ext) => {
    for (const f of readdirSync(join(ROOT, dir)).sort()) if (f.endsWith(ext)) assets[`${dir}/${f}`] = readFileSync(join(ROOT, dir, f), 'utf8');
  };
  add('shaders', '.wgsl');
  add('src/import', '.proto');
  return assets;
}

const browserPlugin = {
  name: 'incept-browser',
  setup(build) {
    build.onResolve({ filter: /platform\/host\.ts$/ }, (args) => ({ path: join(args.resolveDir, args.path.replace(/host\.ts$/, 'host.browser.ts')) }));
    build.onResolve({ filter: /^incept:assets$/ }, () => ({ path: 'assets', namespace: 'incept-assets' }));
    build.onLoad({ filter: /.*/, namespace: 'incept-assets' }, () => ({ contents: `export default ${JSON.stringify(textAssets())};`, loader: 'js' }));
    // Node-only imports resolve to an empty module that tree shaking drops when nothing reachable
    // uses it; one that stays is reported after the build (see nodeOnlyLeftovers).
    // jpeg-js (Node's fallback JPEG decoder) has no side effects on import: leave it out unless used.
    build.onResolve({ filter: /^jpeg-js$/ }, async (args) => {
      if (args.pluginData?.pure) return undefined;
      const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: { pure: true } });
      return { ...r, sideEffects: false };
    });
    // Packages' own optional uses (protobufjs maps 'fs' to false for browsers) resolve as they say.
    build.onResolve({ filter: NODE_ONLY }, (args) =>
      /[\\/]node_modules[\\/]/.test(args.importer) ? undefined : { path: args.path, namespace: 'node-only', sideEffects: false },
    );
    build.onLoad({ filter: /.*/, namespace: 'node-only' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

/** The Node-only modules that made it into the bundle, each with the files importing it. */
function nodeOnlyLeftovers(metafile) {
  const out = [];
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      if (!input.startsWith('node-only:') || bytesInOutput === 0) continue;
      const name = input.slice('node-only:'.length);
      const importers = Object.entries(metafile.inputs)
        .filter(([, v]) => v.imports.some((i) => i.path === input))
        .map(([k]) => k);
      out.push(`${name} (imported by ${importers.join(', ')})`);
    }
  }
  return out;
}

/** Builds the browser bundle; returns its path, size in bytes and the modules it imports at run time. */
export async function buildBrowser({ minify = true, outfile = BUNDLE } = {}) {
  const esbuild = await import('esbuild');
  const tmp = `${outfile}.${process.pid}.tmp.js`;
  mkdirSync(dirname(outfile), { recursive: true });
  const result = await esbuild.build({
    entryPoints: [join(ROOT, 'src/browser.ts')],
    outfile: tmp,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: false,
    metafile: true,
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [browserPlugin],
  });
  const leftovers = nodeOnlyLeftovers(result.metafile);
  if (leftovers.length > 0) {
    rmSync(tmp, { force: true });
    throw new Error(`browser bundle: Node-only modules are reachable from src/browser.ts: ${leftovers.join('; ')}`);
  }
  renameSync(tmp, outfile); // atomic: a page never loads half a bundle
  // What the bundle still imports at run time (nothing, when all is well).
  const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
  return { path: outfile, bytes: statSync(outfile).size, imports };
}

/** Compiles src/ for Node into dist/ with declarations (tsconfig.build.json). */
export function buildNode() {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit status ${r.status ?? r.signal})`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = new Set(process.argv.slice(2));
  try {
    if (!args.has('--browser-only')) {
      rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
      buildNode();
      console.log('incept build: dist/ (Node, with type declarations)');
    }
    const { path, bytes } = await buildBrowser({ minify: !args.has('--no-minify') });
    console.log(`incept build: ${relative(ROOT, path)} ${(bytes / 1024).toFixed(1)} KiB`);
  } catch (e) {
    console.error(`incept build: error: ${e.message}`);
    process.exit(1);
  }
}
