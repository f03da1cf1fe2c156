#!/usr/bin/env node
// Lists the longest functions and methods in TypeScript sources (a line-based scan: a declaration
// line that opens a brace, measured to its matching close; strings, regex literals and comments
// are skipped).
//   node scripts/function-lengths.mjs [DIR=src] [--top N=15] [--over LINES]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? 'src';
const top = Number(args[args.indexOf('--top') + 1] || 15);
const overIdx = args.indexOf('--over');
const over = overIdx >= 0 ? Number(args[overIdx + 1]) : undefined;

const files = (d) => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? files(join(d, f)) : f.endsWith('.ts') ? [join(d, f)] : []));
const DECL = [
  /^\s*(?:export\s+)?(?:async\s+)?function\s*\*?\s*(\w+)/, // function name(
  /^\s*(?:public |private |protected |static |readonly |async |get |set )*(\w+)\s*(?:<[^>]*>)?\([^;]*\)\s*(?::[^=]+)?\{\s*$/, // method
  /^\s*(?:export\s+)?(?:const|let)\s+(\w+)\s*(?::[^=]+)?=\s*(?:async\s+)?(?:\([^)]*\)|\w+)\s*(?::[^=]+)?=>\s*\{/, // const f = () => {
  /^\s*(\w+)\s*:\s*(?:async\s+)?(?:\([^)]*\)|\w+)\s*(?::[^=]+)?=>\s*\{\s*$/, // key: () => {
  /^\s*(?:async\s+)?(\w+)\s*\([^)]*$/, // a method whose parameters span lines
];
const KEYWORDS = new Set(['if', 'for', 'while', 'switch', 'catch', 'return', 'else', 'do', 'try', 'with']);

/** The index of the closing '/' of the regex literal starting at `i` (character classes may hold '/'). */
function regexEnd(line, i) {
  let inClass = false;
  for (let j = i + 1; j < line.length; j++) {
    const c = line[j];
    if (c === '\\') j++;
    else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    else if (c === '/' && !inClass) return j;
  }
  return line.length;
}

/** Brace depth change of a line, ignoring strings, template text and comments. */
function braces(line, state) {
  let d = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (state.block) {
      if (c === '*' && line[i + 1] === '/') (state.block = false), i++;
      continue;
    }
    if (state.quote) {
      if (c === '\\') i++;
      else if (c === state.quote) state.quote = null;
      continue;
    }
    if (c === '/' && line[i + 1] === '/') break;
    if (c === '/' && line[i + 1] === '*') (state.block = true), i++;
    else if (c === '/' && /(^|[(,=:[!&|?{};]|return)\s*$/.test(line.slice(0, i))) i = regexEnd(line, i);
    else if (c === '"' || c === "'" || c === '`') state.quote = c;
    else if (c === '{') d++;
    else if (c === '}') d--;
  }
  if (state.quote !== '`') state.quote = null;
  return d;
}

const found = [];
for (const f of files(dir)) {
  const lines = readFileSync(f, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = DECL.map((r) => lines[i].match(r)).find(Boolean);
    if (!m || KEYWORDS.has(m[1])) continue;
    // Find the line where the body opens, then its matching close.
    let j = i;
    const state = { quote: null, block: false };
    let depth = 0;
    let opened = false;
    for (; j < lines.length; j++) {
      depth += braces(lines[j], state);
      if (!opened && lines[j].includes('{')) opened = true;
      if (opened && depth <= 0) break;
      if (!opened && j - i > 12) break;
    }
    if (opened && j > i) found.push({ name: m[1], file: f, line: i + 1, length: j - i + 1 });
  }
}
found.sort((a, b) => b.length - a.length);
const shown = over !== undefined ? found.filter((x) => x.length > over) : found.slice(0, top);
for (const x of shown) console.log(`${String(x.length).padStart(5)}  ${x.name}  ${x.file}:${x.line}`);
if (over !== undefined) console.log(`${shown.length} functions over ${over} lines`);
