// The image list of a submission: files, folders (every PNG/JPEG below them, sorted), globs
// (`*`, `?` and `**` path segments) and CSV manifests (the first column, relative to the CSV).
// Paths are made absolute: workers on other machines read them from the same shared location.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { isImageFile, parseCsv } from '../train/dataset.ts';

/** Every image file below `dir`, sorted by path. */
function walk(dir: string, out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile() && isImageFile(e.name)) out.push(p);
  }
}

const isGlob = (s: string) => /[*?[]/.test(s);

/** A glob as a regular expression over absolute paths: `**` any depth, `*` and `?` within a name. */
export function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function expandGlob(pattern: string): string[] {
  const abs = resolve(pattern);
  const parts = abs.split(sep);
  const firstGlob = parts.findIndex(isGlob);
  const root = parts.slice(0, firstGlob).join(sep) || sep;
  if (!existsSync(root)) return [];
  const all: string[] = [];
  walk(root, all);
  const re = globRegExp(abs);
  return all.filter((p) => re.test(p));
}

/** The first column of a CSV manifest (a header row 'path,...' is skipped), relative to the CSV. */
function csvPaths(csv: string): string[] {
  const rows = parseCsv(readFileSync(csv, 'utf8'), csv);
  const out: string[] = [];
  rows.forEach(({ fields }, i) => {
    const p = fields[0]?.trim();
    if (!p || (i === 0 && /^(path|file|filename|image)$/i.test(p))) return;
    out.push(isAbsolute(p) ? p : resolve(dirname(csv), p));
  });
  return out;
}

/**
 * Expands the arguments into one list of absolute image paths, in the order given (folders and
 * globs sorted within). A name that matches nothing is an error naming it; files are not opened
 * here (a file that turns out unreadable fails its own record in the worker).
 */
export function expandImages(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (isGlob(a) && !existsSync(a)) {
      const found = expandGlob(a);
      if (found.length === 0) throw new Error(`${a}: the pattern matches no PNG or JPEG files`);
      out.push(...found);
      continue;
    }
    if (!existsSync(a)) throw new Error(`${a}: no such file, folder or manifest`);
    const abs = resolve(a);
    if (statSync(abs).isDirectory()) {
      const found: string[] = [];
      walk(abs, found);
      if (found.length === 0) throw new Error(`${a}: the folder holds no PNG or JPEG files`);
      out.push(...found);
    } else if (/\.csv$/i.test(a)) {
      const found = csvPaths(abs);
      if (found.length === 0) throw new Error(`${a}: the manifest lists no images`);
      out.push(...found);
    } else out.push(abs);
  }
  return out;
}
