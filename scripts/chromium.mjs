#!/usr/bin/env node
// Finds a Chromium for the report's browser test and, when there is none, installs Debian's
// `chromium` package (as root on Debian only; anywhere else it says what to install). Plain JS with
// no dependencies, like setup.mjs: .ci/run calls it before the tests, and test/report.test.ts
// imports ensureChromium() for the same job when it runs alone.
//
//   node scripts/chromium.mjs [--dry-run] [--check]
//     --check    only report whether Chromium is there (exit 0 yes, 1 no); install nothing
//     --dry-run  print what would be installed instead of installing it
// Exit status: 0 when Chromium is there (or would be, in a dry run); 1 otherwise, with the reason.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall, isDebian } from './apt.mjs';

/** Where Debian, Ubuntu and others put it; INCEPT_CHROMIUM (a path) comes first when set. */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
const NAMES = ['chromium', 'chromium-browser'];

/**
 * Flags for a headless run on a machine without a GPU, a sandbox or a network: no GPU process, no
 * sandbox (root in a container), and none of the background connections Chromium makes at start
 * (a closed network refuses them by the dozen). Callers add --user-data-dir (a fresh folder).
 */
export const HEADLESS_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-dev-shm-usage',
  '--hide-scrollbars',
  '--mute-audio',
];

const say = (msg) => console.log(`incept chromium: ${msg}`);

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium executable's path, or null. */
export function findChromium() {
  const fromEnv = process.env.INCEPT_CHROMIUM;
  if (fromEnv) return executable(fromEnv) ? fromEnv : null;
  for (const p of CANDIDATES) if (executable(p)) return p;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of NAMES) if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** `Chromium 156.0...` as the browser prints it, or null when it does not start. */
export function chromiumVersion(path) {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

const HOW =
  'install Chromium (Debian/Ubuntu: apt-get install chromium; Fedora: dnf install chromium) ' +
  'or point INCEPT_CHROMIUM at a Chromium or Chrome executable';

/**
 * Makes sure a Chromium is there: finds it, or installs Debian's package with apt-get when this is
 * Debian and we are root. Never throws; says what it does on stdout.
 * @param {{ dryRun?: boolean, quiet?: boolean }} [options]
 * @returns {{ path: string | null, installed: boolean, reason?: string }}
 *   path null with a reason when there is none and it could not be installed.
 */
export function ensureChromium(options = {}) {
  const { dryRun = false, quiet = false } = options;
  const log = quiet ? () => {} : say;
  const found = findChromium();
  if (found) {
    log(`found ${found}`);
    return { path: found, installed: false };
  }
  if (process.env.INCEPT_CHROMIUM) {
    return { path: null, installed: false, reason: `INCEPT_CHROMIUM=${process.env.INCEPT_CHROMIUM} is not an executable file` };
  }
  if (!isDebian()) return { path: null, installed: false, reason: `no Chromium found and this is not Debian; ${HOW}` };
  if (process.getuid?.() !== 0) {
    return { path: null, installed: false, reason: 'no Chromium found; as root, run: apt-get update && apt-get install -y chromium fonts-liberation' };
  }
  // Without recommends (a desktop's worth of packages), so add a font: a bare machine may have none
  // and pages would render text as boxes.
  log("no Chromium found; installing Debian's chromium package with apt-get (a few minutes)");
  const failed = aptInstall(['chromium', 'fonts-liberation'], { dryRun, quiet, log });
  if (failed) return { path: null, installed: false, reason: failed };
  if (dryRun) return { path: null, installed: false, reason: 'dry run: nothing installed' };
  const path = findChromium();
  if (!path) return { path: null, installed: false, reason: 'apt-get installed chromium but no chromium executable was found' };
  log(`installed ${chromiumVersion(path) ?? 'chromium'} at ${path}`);
  return { path, installed: true };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = new Set(process.argv.slice(2));
  if (args.has('--check')) {
    const path = findChromium();
    say(path ? `${path}: ${chromiumVersion(path) ?? 'does not start'}` : `none found; ${HOW}`);
    process.exit(path ? 0 : 1);
  }
  const dryRun = args.has('--dry-run');
  const r = ensureChromium({ dryRun });
  if (!r.path) {
    say(r.reason ?? 'no Chromium');
    process.exit(dryRun ? 0 : 1);
  }
}
