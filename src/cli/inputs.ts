// The images a command runs on, however they are named: files, folders (every PNG/JPEG under them,
// recursively), glob patterns (* ? [abc] and ** for any depth, expanded here so no shell or npm
// has to pass thousands of names), and --list FILE (one path, folder or pattern per line; '-'
// reads standard input). 3,614 paths on a command line break `npx` (it passes them through one
// shell string); a folder, a pattern or a list does not.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { isImageFile, walk } from '../train/dataset.ts';
import { UsageError } from './errors.ts';
import type { OptionSpec } from './options.ts';

export const LIST_OPTION: OptionSpec = {
  name: 'list',
  value: 'FILE',
  needs: "a file (or '-' for standard input)",
  help: "more images: one path, folder or glob pattern per line ('-': standard input;\nblank lines and lines starting with # are skipped; relative to the current folder)",
};

const GLOB = /[*?[]/;

/** A glob segment ('*.png', 'img_??', '[ab]*') as a regular expression for one path part. */
function segmentRegExp(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const ch = seg[i];
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = seg.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = seg.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** The paths matching a glob pattern, sorted; hidden names match only a pattern that starts with '.'. */
export function expandGlob(pattern: string): string[] {
  const abs = isAbsolute(pattern);
  const parts = pattern.split(/[\\/]+/).filter((p, i) => p !== '' || i === 0);
  let found = [abs ? sep : '.'];
  for (const [i, part] of parts.entries()) {
    if (i === 0 && abs) continue;
    if (!GLOB.test(part)) {
      found = found.map((f) => join(f, part)).filter((f) => existsSync(f));
      continue;
    }
    if (part === '**') {
      found = found.flatMap((f) => (isDir(f) ? [f, ...subfolders(f)] : []));
      continue;
    }
    const re = segmentRegExp(part);
    found = found.flatMap((f) => (isDir(f) ? readdirSync(f).filter((n) => re.test(n) && (part.startsWith('.') || !n.startsWith('.'))).map((n) => join(f, n)) : []));
  }
  return [...new Set(found)].map((f) => (abs ? f : relative('.', f) || '.')).sort();
}

function subfolders(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .flatMap((e) => [join(dir, e.name), ...subfolders(join(dir, e.name))]);
}

/** The images under a folder (recursively, hidden ones left out), in name order. */
function folderImages(cmd: string, dir: string): string[] {
  const images = walk(dir).filter((p) => isImageFile(p) && !relative(dir, p).split(sep).some((s) => s.startsWith('.')));
  if (images.length === 0) throw new UsageError(`${cmd}: ${dir}: no PNG or JPEG images in this folder`);
  return images;
}

/** One argument as images: a folder's images, a pattern's matches, or the path itself. */
function expandOne(cmd: string, arg: string): string[] {
  if (isDir(arg)) return folderImages(cmd, arg);
  if (existsSync(arg) || !GLOB.test(arg)) return [arg]; // a missing file is reported when it is read
  const hits = expandGlob(arg).flatMap((p) => (isDir(p) ? folderImages(cmd, p) : isImageFile(p) ? [p] : []));
  if (hits.length === 0) throw new UsageError(`${cmd}: no PNG or JPEG images match '${arg}'`);
  return hits;
}

/** The lines of a list file ('-': standard input). */
export function readList(cmd: string, list: string): string[] {
  let text: string;
  try {
    text = readFileSync(list === '-' ? 0 : resolve(list), 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(`${cmd}: --list ${list}: cannot read (${code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** Every image of the arguments and the list, in order (a folder's and a pattern's sorted by name). */
export function collectImages(cmd: string, args: string[], list: string | null): string[] {
  const all = [...args, ...(list === null ? [] : readList(cmd, list))];
  return all.flatMap((a) => expandOne(cmd, a));
}
