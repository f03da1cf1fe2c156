// The kernel tuning cache on disk (Node only; host.browser.ts keeps choices in memory): one JSON
// file in the user's cache directory holding, per adapter + driver + kernel version, the variant
// chosen for each shape class and the timings it was chosen by.
//
// Readers read without a lock: writers replace the file by rename, so a reader sees one whole
// version. Writers merge under a lock file (created with O_EXCL; one older than STALE_LOCK_MS is
// taken to be left by a dead process and removed), re-reading the file inside the lock, so two
// processes tuning at once both keep what they found.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface TuningEntry {
  /** The variant chosen (the fastest whose output matched the reference). */
  variant: string;
  /** Fastest milliseconds per candidate that ran and matched. */
  ms: Record<string, number>;
  /** Candidates whose output differed from the reference variant's (never chosen). */
  rejected: string[];
  /** 'gpu-timestamp' or 'wall-clock'. */
  method: string;
  /** When it was tuned (ISO time). */
  at: string;
}

interface AdapterSection {
  adapter: Record<string, string>;
  entries: Record<string, TuningEntry>;
}

interface TuningFile {
  format: 'incept-tuning';
  version: 1;
  /** By adapter key (vendor / architecture / device / description-with-driver # kernel version). */
  adapters: Record<string, AdapterSection>;
}

/** A lock older than this is taken to be left by a process that died while writing. */
const STALE_LOCK_MS = 10_000;
/** How long a writer waits for the lock before giving up (the choices stay in memory). */
const LOCK_WAIT_MS = 30_000;

const warned = new Set<string>();

/**
 * The cache file: INCEPT_TUNING_CACHE (a path; 'off' or empty: no file, choices live in memory
 * only), else $XDG_CACHE_HOME/incept/tuning.json, else ~/.cache/incept/tuning.json.
 */
export function tuningCachePath(env: Record<string, string | undefined> = process.env): string | null {
  const given = env.INCEPT_TUNING_CACHE;
  if (given !== undefined) return given === '' || given === 'off' ? null : given;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'incept', 'tuning.json');
}

/** The file's content, or an empty cache when it is absent; a corrupt file is one warning, then empty. */
function load(path: string): TuningFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return empty();
    warnOnce(path, `cannot read it (${(e as Error).message})`);
    return empty();
  }
  try {
    const f = JSON.parse(text) as TuningFile;
    if (f?.format !== 'incept-tuning' || f.version !== 1 || typeof f.adapters !== 'object' || f.adapters === null) {
      throw new Error('not an incept tuning cache (format/version)');
    }
    return f;
  } catch (e) {
    warnOnce(path, `corrupt (${(e as Error).message}); starting with an empty cache`);
    return empty();
  }
}

const empty = (): TuningFile => ({ format: 'incept-tuning', version: 1, adapters: {} });

function warnOnce(path: string, why: string): void {
  if (warned.has(path)) return;
  warned.add(path);
  process.stderr.write(`incept: warning: tuning cache ${path}: ${why}\n`);
}

/** The entries tuned for one adapter key (empty when none or no file). */
export function readTuningEntries(path: string, adapterKey: string): Record<string, TuningEntry> {
  return { ...(load(path).adapters[adapterKey]?.entries ?? {}) };
}

/**
 * Adds `entries` (shape class -> choice) for one adapter to the file, under the lock, keeping
 * every other entry (those another process wrote meanwhile included). Atomic: temp file + rename.
 */
export async function mergeTuningEntries(path: string, adapterKey: string, adapter: Record<string, string>, entries: Record<string, TuningEntry>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const lock = `${path}.lock`;
  await acquire(lock);
  try {
    const file = load(path);
    const section = (file.adapters[adapterKey] ??= { adapter, entries: {} });
    section.adapter = adapter;
    Object.assign(section.entries, entries);
    writeAtomically(path, `${JSON.stringify(file, null, 1)}\n`);
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // Removed as stale by another process: nothing left to release.
    }
  }
}

function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Creates the lock file exclusively, waiting for another holder and removing a stale one. */
async function acquire(lock: string): Promise<void> {
  const start = Date.now();
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid} ${new Date().toISOString()}\n`);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw new Error(`tuning cache lock ${lock}: ${(e as Error).message}`);
    }
    try {
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) unlinkSync(lock);
    } catch {
      // Released meanwhile: try again at once.
      continue;
    }
    if (Date.now() - start > LOCK_WAIT_MS) throw new Error(`tuning cache lock ${lock}: held by another process for over ${LOCK_WAIT_MS / 1000} s`);
    await sleep(5 + Math.random() * 20);
  }
}
