// Output paths are checked before a command does any work, so a typo in --json or --report fails
// in a second instead of after an hour of evaluation. Nothing is created here: a path passes
// when the nearest folder that exists on the way to it is writable (the command makes the rest).
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './errors.ts';

/** The nearest existing ancestor of `path` (itself included). */
function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

function checkWritableFolder(flag: string, given: string, folder: string): void {
  const at = nearestExisting(folder);
  if (!statSync(at).isDirectory()) throw new UsageError(`${flag} ${given}: ${at} is a file, not a folder`);
  try {
    accessSync(at, constants.W_OK);
  } catch {
    throw new UsageError(`${flag} ${given}: cannot write in ${at} (permission denied)`);
  }
}

/** A file the command will write at `path` (its folders may be missing; they are made). */
export function checkOutputFile(flag: string, path: string): void {
  if (existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`${flag} ${path}: is a folder, not a file`);
  checkWritableFolder(flag, path, dirname(resolve(path)));
}

/** A folder the command will write into (made when missing). */
export function checkOutputFolder(flag: string, path: string): void {
  checkWritableFolder(flag, path, path);
}
