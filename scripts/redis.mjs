#!/usr/bin/env node
// Finds redis-server for the job-queue tests and bench (BullMQ runs on Redis) and, when there is
// none, installs Debian's `redis-server` package (as root on Debian only; anywhere else it says what
// to install). Plain JS with no dependencies, like chromium.mjs: .ci/run calls it before the tests,
// and test/queue.test.ts and bench/queue.ts import ensureRedis() and startRedis().
//
//   node scripts/redis.mjs [--dry-run] [--check]
//     --check    only report whether redis-server is there (exit 0 yes, 1 no); install nothing
//     --dry-run  print what would be installed instead of installing it
//
// startRedis() runs a private server on loopback: a free port, a temporary directory, the
// append-only file on (so a restart keeps the queue), no RDB snapshots; stop() kills it and
// restart() brings it back on the same port with the same data.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall, isDebian } from './apt.mjs';

const say = (msg) => console.log(`incept redis: ${msg}`);

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The redis-server executable's path (INCEPT_REDIS_SERVER first), or null. */
export function findRedis() {
  const fromEnv = process.env.INCEPT_REDIS_SERVER;
  if (fromEnv) return executable(fromEnv) ? fromEnv : null;
  for (const dir of ['/usr/bin', '/usr/local/bin', ...(process.env.PATH ?? '').split(delimiter)]) {
    if (dir && executable(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return null;
}

const HOW = 'install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or point INCEPT_REDIS_SERVER at redis-server';

/**
 * Makes sure redis-server is there: finds it, or installs Debian's package with apt-get when this
 * is Debian and we are root. Never throws.
 * @param {{ dryRun?: boolean, quiet?: boolean }} [options]
 * @returns {{ path: string | null, installed: boolean, reason?: string }}
 */
export function ensureRedis(options = {}) {
  const { dryRun = false, quiet = false } = options;
  const log = quiet ? () => {} : say;
  const found = findRedis();
  if (found) {
    log(`found ${found}`);
    return { path: found, installed: false };
  }
  if (process.env.INCEPT_REDIS_SERVER) return { path: null, installed: false, reason: `INCEPT_REDIS_SERVER=${process.env.INCEPT_REDIS_SERVER} is not an executable file` };
  if (!isDebian()) return { path: null, installed: false, reason: `no redis-server found and this is not Debian; ${HOW}` };
  if (process.getuid?.() !== 0) return { path: null, installed: false, reason: 'no redis-server found; as root, run: apt-get update && apt-get install -y redis-server' };
  log("no redis-server found; installing Debian's redis-server package with apt-get");
  const failed = aptInstall(['redis-server'], { dryRun, quiet, log });
  if (failed) return { path: null, installed: false, reason: failed };
  if (dryRun) return { path: null, installed: false, reason: 'dry run: nothing installed' };
  const path = findRedis();
  if (!path) return { path: null, installed: false, reason: 'apt-get installed redis-server but no redis-server executable was found' };
  log(`installed ${path}`);
  return { path, installed: true };
}

/** A free TCP port on loopback (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function waitForPort(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`redis-server exited with status ${child.exitCode} before listening on ${port}`));
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/**
 * Starts a private redis-server on 127.0.0.1 (a free port unless given) with its data in a new
 * temporary directory. Returns { url, port, dir, stop(), restart(), kill() }: stop() ends it
 * (SIGTERM, the append-only file flushed), restart() stops it and starts it again on the same port
 * and data, kill() stops it and removes the directory.
 * @param {{ port?: number }} [options]
 */
export async function startRedis(options = {}) {
  const path = findRedis();
  if (!path) throw new Error(`no redis-server; ${HOW} (or run node scripts/redis.mjs)`);
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'incept-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--loglevel', 'warning', '--logfile', join(dir, 'redis.log')];
  let child = null;
  // If this process ends without calling kill() (a crash, Ctrl-C), the server goes with it.
  const onExit = () => child?.exitCode === null && child.kill('SIGKILL');
  process.once('exit', onExit);
  const launch = async () => {
    child = spawn(path, args, { stdio: 'ignore' });
    await waitForPort(port, child, 10_000);
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => child?.pid,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    kill: async () => {
      process.off('exit', onExit);
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = new Set(process.argv.slice(2));
  if (args.has('--check')) {
    const path = findRedis();
    say(path ? `found ${path}` : `none found; ${HOW}`);
    process.exit(path ? 0 : 1);
  }
  const dryRun = args.has('--dry-run');
  const r = ensureRedis({ dryRun });
  if (!r.path) {
    say(r.reason ?? 'no redis-server');
    process.exit(dryRun ? 0 : 1);
  }
}
