#!/usr/bin/env node
// Packs everything scripts/gpu-check.sh needs on a bare GPU machine (x86-64 Linux with no Node, no
// network, maybe no Vulkan loader) into one ignored folder that travels beside the tracked files:
//   node.xz              this Node binary (process.execPath), xz-compressed
//   dawn.node.xz         Dawn's Node addon (npm 'webgpu'), xz-compressed; the check unpacks it into
//                        /tmp and names it in INCEPT_DAWN_NODE, which the bundled 'webgpu' loader reads
//   js/incept.mjs        src/cli/main.ts with its npm dependencies inlined (esbuild)
//   js/bench.mjs         bench/main.ts likewise, TensorFlow.js's WebGPU peer included
//   debs/*.deb           the Vulkan loader and glvnd's dispatch library (apt-get download)
//   sources.sha256       the sources the bundles were built from, so a stale pack is refused
//   MANIFEST.txt         what is in the pack: versions, sizes
// The bundles sit two folders below the repo root, so their import.meta.url finds shaders/ and
// weights/ in the tracked tree exactly as src/platform/host.ts does from src/platform/.
// Prints the pack's size and exits non-zero, saying why, when it is over its budget (the device
// tool carries 64 MiB in all: the tracked tree + the pack).
//
//   node scripts/gpu-pack.mjs [--out .gpu-pack] [--budget-mib 48]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MIB = 1024 * 1024;
const CARRY_LIMIT_MIB = 64; // the device tool's limit on what travels
const DAWN_NODE = join(ROOT, 'node_modules/webgpu/dist/linux-x64/dawn.node');
/**
 * The Vulkan loader, glvnd's libGLdispatch that NVIDIA's Vulkan driver library links to, and the
 * rest of the device README's loader recipe (seen working there; a few hundred KiB).
 */
const DEBS = ['libvulkan1', 'libglvnd0', 'libegl1', 'libgl1', 'libglx0', 'libopengl0', 'libgles2'];
/** Bundle entry points, by output name. */
const ENTRIES = { 'incept.mjs': 'src/cli/main.ts', 'bench.mjs': 'bench/main.ts' };
/**
 * Left out of the bundles: peers with no GPU meaning or too big to carry (ONNX Runtime's native
 * and wasm builds; the check passes --peers tfjs), the browser bench's Chromium driver, and the
 * build tools that only other bench suites load. Each stays a dynamic import that fails if reached.
 */
const EXTERNAL = ['onnxruntime-node', 'onnxruntime-web', 'playwright-core', 'esbuild', 'tsx', 'tsx/*', 'vitest'];
/** The sources whose hashes gate the pack (gpu-check.sh checks them with sha256sum -c). */
const SOURCE_DIRS = ['src', 'bench', 'shaders'];

function fail(message) {
  console.error(`gpu-pack: error: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { out: join(ROOT, '.gpu-pack'), budgetMib: 48 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? fail(`${a} needs a value`);
    if (a === '--out') o.out = resolve(value());
    else if (a === '--budget-mib') o.budgetMib = Number(value());
    else if (a === '-h' || a === '--help') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 17).join('\n'));
      process.exit(0);
    } else fail(`unknown option '${a}' (options: --out DIR, --budget-mib N)`);
  }
  if (!(o.budgetMib > 0)) fail('--budget-mib must be a positive number');
  return o;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MIB, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? '').trim().slice(-500)}`);
  return r.stdout;
}

/**
 * xz -9 of src into dir/name. xz of the Node binary takes over a minute here, so a previous pack's
 * file is reused when the source's path, size and mtime are unchanged (recorded in name.from).
 */
function compressed(src, dir, name, previous) {
  const st = statSync(src);
  const from = `${src} ${st.size} ${st.mtimeMs}\n`;
  const dst = join(dir, name);
  const old = join(previous, name);
  if (existsSync(old) && existsSync(`${old}.from`) && readFileSync(`${old}.from`, 'utf8') === from) {
    copyFileSync(old, dst);
    console.log(`gpu-pack: ${name}: reused (${src} unchanged)`);
  } else {
    console.log(`gpu-pack: ${name}: xz -9 of ${src} (${(st.size / MIB).toFixed(1)} MiB; a minute or two)`);
    run('sh', ['-c', 'xz -9 -T2 -c "$1" > "$2"', 'sh', src, dst]);
  }
  writeFileSync(`${dst}.from`, from);
}

/**
 * npm 'webgpu' requires dist/<platform>-<arch>/dawn.node beside its index.js, which in a bundle is
 * beside the bundle; the check unpacks dawn.node elsewhere (/tmp) and names it in INCEPT_DAWN_NODE.
 * Fails when a new 'webgpu' computes the path differently, rather than bundling a loader that
 * cannot find the addon.
 */
const dawnPathPlugin = {
  name: 'incept-dawn-path',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]webgpu[\\/]index\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const pattern = /const dawnNodePath = (join\(__dirname, 'dist',[^;]*\));/;
      if (!pattern.test(source)) throw new Error(`${args.path}: no 'const dawnNodePath = join(__dirname, 'dist', ...)' to redirect to INCEPT_DAWN_NODE`);
      return { contents: source.replace(pattern, 'const dawnNodePath = process.env.INCEPT_DAWN_NODE || $1;'), loader: 'js' };
    });
  },
};

/** The two bundles, Node ESM; CommonJS dependencies get a real require() through the banner. */
async function bundle(dir) {
  const esbuild = await import('esbuild');
  mkdirSync(join(dir, 'js'), { recursive: true });
  for (const [name, entry] of Object.entries(ENTRIES)) {
    await esbuild.build({
      entryPoints: [join(ROOT, entry)],
      outfile: join(dir, 'js', name),
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      minify: true,
      legalComments: 'none',
      logLevel: 'error',
      external: EXTERNAL,
      plugins: [dawnPathPlugin],
      banner: { js: "import { createRequire as __inceptCreateRequire } from 'node:module'; const require = __inceptCreateRequire(import.meta.url);" },
    });
    console.log(`gpu-pack: js/${name}: ${entry} (${(statSync(join(dir, 'js', name)).size / MIB).toFixed(1)} MiB)`);
  }
}

/** apt-get download of DEBS (amd64, whatever this machine is); a previous pack's .debs if offline. */
function debs(dir, previous) {
  const target = join(dir, 'debs');
  mkdirSync(target, { recursive: true });
  const lists = '/tmp/incept-gpu-pack-apt';
  mkdirSync(join(lists, 'partial'), { recursive: true });
  const arch = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', `-oDir::State::Lists=${lists}`];
  try {
    run('apt-get', [...arch, '-q', 'update'], { timeout: 180_000 });
    run('apt-get', [...arch, '-q', 'download', ...DEBS], { cwd: target, timeout: 180_000 });
  } catch (e) {
    const old = join(previous, 'debs');
    const kept = existsSync(old) ? readdirSync(old).filter((f) => f.endsWith('.deb')) : [];
    if (kept.length < DEBS.length) throw new Error(`cannot download the Vulkan loader packages (${DEBS.join(', ')}): ${e.message}`);
    for (const f of kept) copyFileSync(join(old, f), join(target, f));
    console.log(`gpu-pack: debs: apt-get failed, kept the previous pack's (${kept.join(', ')})`);
  }
  const got = readdirSync(target).filter((f) => f.endsWith('.deb'));
  for (const d of DEBS) if (!got.some((f) => f.startsWith(`${d}_`))) throw new Error(`debs: ${d}_*.deb is missing after apt-get download`);
  console.log(`gpu-pack: debs: ${got.join(', ')}`);
}

/** sha256sum-format lines ("HEX  PATH") of the tracked files under SOURCE_DIRS, from the repo root. */
function sourceHashes(dir) {
  const files = run('git', ['ls-files', '-z', ...SOURCE_DIRS], { cwd: ROOT }).split('\0').filter(Boolean).sort();
  const lines = files.filter((f) => existsSync(join(ROOT, f))).map((f) => `${createHash('sha256').update(readFileSync(join(ROOT, f))).digest('hex')}  ${f}`);
  writeFileSync(join(dir, 'sources.sha256'), `${lines.join('\n')}\n`);
}

/** Bytes of every plain file under dir. */
function treeBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? treeBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  return n;
}

/** Bytes of what travels besides the pack: tracked files and untracked ones git does not ignore. */
function checkoutBytes() {
  const files = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT }).split('\0').filter(Boolean);
  return files.reduce((n, f) => n + (existsSync(join(ROOT, f)) ? statSync(join(ROOT, f)).size : 0), 0);
}

function manifest(dir) {
  const version = (pkg) => JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  const lines = [
    `built ${new Date().toISOString()} from ${run('git', ['rev-parse', 'HEAD'], { cwd: ROOT }).trim()}${run('git', ['status', '--porcelain', '--untracked-files=no', ...SOURCE_DIRS], { cwd: ROOT }).trim() ? ' (with local changes)' : ''}`,
    `node ${process.version} (${process.platform}-${process.arch})`,
    `webgpu ${version('webgpu')} (dawn.node)`,
    `@tensorflow/tfjs-core ${version('@tensorflow/tfjs-core')}, @tensorflow/tfjs-backend-webgpu ${version('@tensorflow/tfjs-backend-webgpu')}`,
    `esbuild ${version('esbuild')}`,
    `left out of the bundles: ${EXTERNAL.join(', ')}`,
    '',
    ...listFiles(dir).map(([f, n]) => `${String(n).padStart(10)}  ${f}`),
  ];
  writeFileSync(join(dir, 'MANIFEST.txt'), `${lines.join('\n')}\n`);
}

function listFiles(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name), base) : [[relative(base, join(dir, e.name)), statSync(join(dir, e.name)).size]]));
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the GPU machine is linux-x64; this Node is ${process.platform}-${process.arch}`);
  if (!existsSync(DAWN_NODE)) fail(`${DAWN_NODE} is missing (npm 'webgpu' not installed?)`);
  // Built beside the old pack and swapped in at the end: a failed run leaves the old pack whole.
  const tmp = `${o.out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await bundle(tmp);
    sourceHashes(tmp);
    debs(tmp, o.out);
    compressed(DAWN_NODE, tmp, 'dawn.node.xz', o.out);
    compressed(process.execPath, tmp, 'node.xz', o.out);
    manifest(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    fail(e.message);
  }
  const pack = treeBytes(tmp);
  const checkout = checkoutBytes();
  console.log(`gpu-pack: the pack: ${(pack / MIB).toFixed(1)} MiB (${pack} bytes); with the checkout's ${(checkout / MIB).toFixed(1)} MiB: ${((pack + checkout) / MIB).toFixed(1)} MiB of the ${CARRY_LIMIT_MIB} MiB that travel`);
  const over = pack > o.budgetMib * MIB ? `the pack is over its budget of ${o.budgetMib} MiB` : pack + checkout > CARRY_LIMIT_MIB * MIB ? `the checkout and the pack are over the ${CARRY_LIMIT_MIB} MiB the device tool carries` : '';
  if (over) {
    rmSync(tmp, { recursive: true, force: true });
    fail(`${over}; ${relative(ROOT, o.out) || o.out} was left as it was`);
  }
  rmSync(o.out, { recursive: true, force: true });
  renameSync(tmp, o.out);
  console.log(`gpu-pack: wrote ${o.out}`);
  console.log(`gpu-pack: carry ["${basename(o.out)}"] and run 'bash scripts/gpu-check.sh' on the GPU machine`);
}

await main();
