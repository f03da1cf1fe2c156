// Atomic file writes: a temporary file in the target's directory, fsync, rename over the target,
// fsync of the directory. A crash or error leaves either the old file or the complete new one.
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes parts to `path` atomically: a temporary file in the same directory, fsync, rename over
 * the target, fsync of the directory. A failure leaves any previous file intact.
 */
export function writeFileAtomic(path: string, parts: Iterable<Uint8Array>): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o644);
  } catch (err) {
    throw writeError(path, err, tmp);
  }
  let open = true;
  try {
    for (const p of parts) {
      let done = 0;
      while (done < p.byteLength) done += writeSync(fd, p, done, p.byteLength - done);
    }
    fsyncSync(fd);
    open = false;
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    if (open) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw writeError(path, err, tmp);
  }
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Directories cannot be fsynced on every platform; the rename itself is done.
  }
}

/** What went wrong writing `path`, naming it (never the temporary file the user did not ask for). */
export function writeError(path: string, err: unknown, tmp = ''): Error {
  const code = (err as { code?: string }).code;
  const why: Record<string, string> = {
    ENOENT: `its folder ${dirname(path)} does not exist`,
    ENOTDIR: `${dirname(path)} is not a folder`,
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EISDIR: 'it is a folder',
    ENOSPC: 'no space left on the device',
    EROFS: 'the file system is read-only',
  };
  const raw = (err as Error).message ?? String(err);
  return new Error(`${path}: cannot write (${(code && why[code]) ?? (tmp ? raw.split(tmp).join(path) : raw)})`);
}

/** Temporary files of writeFileAtomic that a killed process left next to `path` (to remove on restart). */
export function orphanedTemporaries(path: string): string[] {
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(prefix) && /^\.\S+\.\d+\.[a-z0-9]+\.tmp$/.test(n)).map((n) => join(dirname(path), n));
}
