#!/usr/bin/env node
// Makes a fresh checkout runnable: installs npm dependencies when node_modules is missing or
// stale, then checks that Dawn finds a WebGPU adapter. Without a GPU on Debian bookworm (as root)
// it installs Mesa's lavapipe (CPU Vulkan) from bookworm-backports: bookworm's own Mesa 22 is too
// old for Dawn. Plain JS with no dependencies: it runs before anything is installed.
//
//   node scripts/setup.mjs [--dry-run] [--simulate-no-adapter] [--quiet]
//     --dry-run              print what would be installed instead of installing it
//     --simulate-no-adapter  act as if the probe found no adapter (to check the install path)
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MARKER = join(ROOT, 'node_modules', '.incept-setup');
const BACKPORTS_LINE = 'deb http://deb.debian.org/debian bookworm-backports main';
const BACKPORTS_FILE = '/etc/apt/sources.list.d/bookworm-backports.list';
const DAWN_NOISE = /^Warning: maxDynamic\w+ artificially reduced.*$\n?/gm;

const args = new Set(process.argv.slice(2));
const dryRun = args.has('--dry-run');
const simulateNoAdapter = args.has('--simulate-no-adapter');
process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Dawn warns when it is unset

const say = (msg) => console.log(`incept setup: ${msg}`);

function fail(msg) {
  console.error(`incept setup: error: ${msg}`);
  process.exit(1);
}

/** Runs a command with inherited output; exits with a message when it fails. */
function sh(cmd, argv, opts = {}) {
  if (dryRun) {
    say(`[dry run] would run: ${[cmd, ...argv].join(' ')}`);
    return;
  }
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`'${[cmd, ...argv].join(' ')}' failed with exit status ${r.status}`);
}

// ---- 1. npm dependencies ------------------------------------------------------------------

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * True when node_modules holds exactly the versions package-lock.json names, judged from npm's
 * own record of the install (node_modules/.package-lock.json). Lets a tree installed by hand
 * (npm ci / npm install) be accepted without reinstalling it.
 */
function installedMatchesLock(lock) {
  const installed = readJson(join(ROOT, 'node_modules', '.package-lock.json'));
  if (!installed?.packages || !lock?.packages) return false;
  for (const [path, want] of Object.entries(lock.packages)) {
    if (path === '' || want.link) continue;
    const have = installed.packages[path];
    if (!have) {
      if (want.optional) continue; // platform-specific binaries for other systems
      return false;
    }
    if (have.version !== want.version) return false;
  }
  return true;
}

/** Packages with install scripts must be approved in package.json "allowScripts" (npm >= 11). */
function checkAllowScripts(lock) {
  const allowed = readJson(join(ROOT, 'package.json'))?.allowScripts ?? {};
  const missing = new Set();
  for (const [path, p] of Object.entries(lock.packages ?? {})) {
    if (!p.hasInstallScript || path === '') continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (!allowed[name]) missing.add(name);
  }
  for (const name of missing) {
    say(`warning: ${name} has an install script but is not approved in package.json "allowScripts"`);
  }
}

function ensureDependencies() {
  const lockPath = join(ROOT, 'package-lock.json');
  if (!existsSync(lockPath)) fail(`${lockPath} is missing; it is part of the repository`);
  const lockText = readFileSync(lockPath);
  const hash = createHash('sha256').update(lockText).update(process.platform + process.arch).digest('hex');
  if (existsSync(MARKER) && readFileSync(MARKER, 'utf8').trim() === hash) return;

  const lock = JSON.parse(lockText.toString('utf8'));
  checkAllowScripts(lock);
  if (!installedMatchesLock(lock)) {
    say(existsSync(join(ROOT, 'node_modules')) ? 'node_modules is stale; running npm ci' : 'installing dependencies (npm ci)');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    sh(npm, ['ci', '--include=dev', '--no-audit', '--no-fund'], { shell: process.platform === 'win32' });
  }
  if (!dryRun) writeFileSync(MARKER, `${hash}\n`);
}

// ---- 2. WebGPU adapter ----------------------------------------------------------------------

const PROBE = `
import { create } from 'webgpu';
const a = await create([]).requestAdapter();
console.log(JSON.stringify(a ? { vendor: a.info.vendor, description: a.info.description } : null));
`;

/** Asks Dawn for an adapter in a child process (a broken driver must not take this one down). */
function probe() {
  if (simulateNoAdapter) return { adapter: null, log: '(simulated: no adapter)' };
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const log = `${r.stderr ?? ''}`.replace(DAWN_NOISE, '').trim();
  if (r.status !== 0) return { adapter: null, log: log || `probe exited with status ${r.status ?? r.signal}` };
  const last = r.stdout.trim().split('\n').pop() ?? 'null';
  try {
    return { adapter: JSON.parse(last), log };
  } catch {
    return { adapter: null, log: `unexpected probe output: ${last}` };
  }
}

function osRelease() {
  const text = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  const get = (k) => text.match(new RegExp(`^${k}="?([^"\\n]*)"?`, 'm'))?.[1] ?? '';
  return { id: get('ID'), codename: get('VERSION_CODENAME') };
}

function hasBackports() {
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir)) files.push(join(dir, f));
  return files.some((f) => {
    try {
      return /^[^#]*bookworm-backports/m.test(readFileSync(f, 'utf8'));
    } catch {
      return false;
    }
  });
}

const WHAT_TO_INSTALL =
  'incept needs a WebGPU adapter (Dawn over Vulkan, Metal or D3D12). Without a GPU, install a CPU ' +
  'Vulkan driver: Mesa lavapipe >= 23 (Debian bookworm: mesa-vulkan-drivers from bookworm-backports; ' +
  'Debian trixie / Ubuntu 24.04: apt-get install mesa-vulkan-drivers libvulkan1; Fedora: dnf install ' +
  'mesa-vulkan-drivers). With a GPU, install its Vulkan driver.';

function installLavapipe() {
  const os = osRelease();
  const isRoot = process.getuid?.() === 0;
  if (process.platform !== 'linux' || os.id !== 'debian' || os.codename !== 'bookworm') {
    fail(`no WebGPU adapter found. ${WHAT_TO_INSTALL}`);
  }
  if (!isRoot) {
    fail(
      'no WebGPU adapter found. As root, run:\n' +
        `  echo '${BACKPORTS_LINE}' > ${BACKPORTS_FILE}\n` +
        '  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1\n' +
        'then run this again.',
    );
  }
  say('no WebGPU adapter; installing Mesa lavapipe (CPU Vulkan) from bookworm-backports');
  if (!hasBackports()) {
    if (dryRun) say(`[dry run] would write '${BACKPORTS_LINE}' to ${BACKPORTS_FILE}`);
    else writeFileSync(BACKPORTS_FILE, `${BACKPORTS_LINE}\n`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  sh('apt-get', ['update', '-qq'], { env });
  sh('apt-get', ['install', '-y', '-qq', '-t', 'bookworm-backports', 'mesa-vulkan-drivers', 'libvulkan1'], { env });
}

function ensureAdapter() {
  if (!existsSync(join(ROOT, 'node_modules', 'webgpu'))) {
    if (dryRun) return say('[dry run] would probe for a WebGPU adapter after installing dependencies');
    fail("the 'webgpu' package is not installed; run npm ci");
  }
  let found = probe();
  if (found.adapter) return;
  if (found.log) say(`adapter probe: ${found.log.split('\n').slice(-3).join(' | ')}`);
  installLavapipe();
  if (dryRun) {
    say('[dry run] would probe for an adapter again');
    return;
  }
  found = probe();
  if (!found.adapter) {
    fail(`still no WebGPU adapter after installing lavapipe (${found.log || 'no details'}). ${WHAT_TO_INSTALL}`);
  }
  say(`WebGPU adapter: ${found.adapter.vendor} ${found.adapter.description}`.trim());
}

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) fail(`Node ${process.versions.node} is too old; incept needs Node >= 20`);
ensureDependencies();
ensureAdapter();
