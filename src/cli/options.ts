// One option table per command: node:util's parseArgs splits argv, the table says what each option
// takes and checks its value, and the same table writes the command's --help. A mistake is one
// UsageError naming the command and the option: "classify: --top needs a whole number >= 1, got '0'".
import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';

/** A value that is not what an option takes: the message is what it needs ("a whole number >= 1"). */
export class BadValue extends Error {}

export interface OptionSpec {
  /** The long name without dashes: 'model' for --model. */
  name: string;
  /** What the value is called in the help (FILE, N); absent for a flag without a value. */
  value?: string;
  /** The help text; a second line of help is indented under the first. */
  help: string;
  /** Checks and converts the text; throws BadValue(what it needs). Default: any non-empty text. */
  parse?: (text: string) => unknown;
  /** What a missing value needs, for the error ("a file"); default: the value name. */
  needs?: string;
  /** May be given more than once (the values are collected in order). */
  multiple?: boolean;
  /** A heading printed above this option in the help. */
  section?: string;
  short?: string;
  /** Left out of the help (options for tests). */
  hidden?: boolean;
}

export interface Parsed {
  /** The parsed values by option name (a multiple option: an array). */
  values: Record<string, unknown>;
  positionals: string[];
  /** The options given, as written (--model), in order of first appearance. */
  given: Set<string>;
  help: boolean;
}

/**
 * Parses argv against `table`; `cmd` prefixes every error. --help / -h sets `help` and stops there.
 * `usage` is said after an unknown option (a string: the usage line; a function: the whole message).
 */
export function parseOptions(cmd: string, usage: string | ((option: string) => string), table: OptionSpec[], argv: string[]): Parsed {
  const byName = new Map(table.map((o) => [o.name, o]));
  const byShort = new Map(table.filter((o) => o.short).map((o) => [o.short!, o]));
  const config = Object.fromEntries(
    table.map((o) => [o.name, { type: o.value ? ('string' as const) : ('boolean' as const), multiple: o.multiple === true, ...(o.short ? { short: o.short } : {}) }]),
  );
  const { tokens } = parseArgs({ args: argv, options: config, strict: false, allowPositionals: true, tokens: true });
  const out: Parsed = { values: {}, positionals: [], given: new Set(), help: false };
  for (const t of tokens) {
    if (t.kind === 'positional') out.positionals.push(t.value);
    if (t.kind !== 'option') continue;
    if (t.name === 'help' || t.name === 'h') return { ...out, help: true };
    const spec = byName.get(t.name) ?? (t.rawName.startsWith('--') ? undefined : byShort.get(t.name));
    if (!spec) throw new UsageError(typeof usage === 'string' ? `${cmd}: unknown option '${t.rawName}' (usage: ${usage})` : usage(t.rawName));
    const flag = `--${spec.name}`;
    out.given.add(flag);
    out.values[spec.name] = spec.multiple ? [...((out.values[spec.name] as unknown[]) ?? []), valueOf(cmd, flag, spec, t)] : valueOf(cmd, flag, spec, t);
  }
  return out;
}

function valueOf(cmd: string, flag: string, spec: OptionSpec, t: { value?: string; inlineValue?: boolean }): unknown {
  if (!spec.value) {
    if (t.value !== undefined) throw new UsageError(`${cmd}: ${flag} takes no value, got '${t.value}'`);
    return true;
  }
  const text = t.value;
  // A following option is not a value: `--model --json` forgot the model.
  if (text === undefined || text === '' || (!t.inlineValue && text.startsWith('--'))) {
    throw new UsageError(`${cmd}: ${flag} needs ${spec.needs ?? spec.value}`);
  }
  if (!spec.parse) return text;
  try {
    return spec.parse(text);
  } catch (e) {
    if (!(e instanceof BadValue)) throw e;
    throw new UsageError(`${cmd}: ${flag} needs ${e.message}, got '${text}'`);
  }
}

/** The help: the usage line, a description, then every option of the table with its help. */
export function helpText(usage: string, description: string, table: OptionSpec[], epilogue = ''): string {
  const lines = [`usage: ${usage}`, '', description, '', ...optionLines(table)];
  if (epilogue) lines.push('', epilogue);
  return lines.join('\n');
}

/** One line per option (more for long help), the help texts aligned; `indent` before each. */
export function optionLines(table: OptionSpec[], indent = '  '): string[] {
  const label = (o: OptionSpec) => `--${o.name}${o.value ? ` ${o.value}` : ''}`;
  const shown = table.filter((x) => !x.hidden);
  const width = Math.min(24, Math.max(...shown.map((o) => label(o).length)));
  const pad = `${indent}${' '.repeat(width)}  `;
  const lines: string[] = [];
  for (const o of shown) {
    if (o.section) lines.push(o.section);
    const [first, ...rest] = o.help.split('\n');
    if (label(o).length > width) lines.push(`${indent}${label(o)}`, `${pad}${first}`);
    else lines.push(`${indent}${label(o).padEnd(width)}  ${first}`);
    for (const more of rest) lines.push(`${pad}${more}`);
  }
  return lines;
}

// ---- value parsers: each throws BadValue(what the option needs) ----

export const text = (what: string) => (v: string) => {
  if (v.trim() === '') throw new BadValue(what);
  return v;
};

export const number = (what: string, ok: (v: number) => boolean) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !ok(n)) throw new BadValue(what);
  return n;
};

export const wholeNumber = (min: number, what = `a whole number >= ${min}`) => number(what, (v) => Number.isInteger(v) && v >= min);

export const choice =
  <T extends string>(options: readonly T[]) =>
  (v: string): T => {
    if (!options.includes(v as T)) throw new BadValue(`one of ${options.join(', ')}`);
    return v as T;
  };

/** '128x96' -> [128, 96] (height x width); 'N' -> [N, N]. */
export function size(v: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(v.trim());
  const h = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || !(h >= 1 && w >= 1)) throw new BadValue('HxW (e.g. 128x128)');
  return [h, w];
}

/** '127.5' or '123.7,116.3,103.5'; `nonZero` for divisors. */
export const channels =
  (nonZero = false) =>
  (v: string): number | number[] => {
    const parts = v.split(',').map((x) => Number(x.trim()));
    const ok = (parts.length === 1 || parts.length === 3) && parts.every((x) => Number.isFinite(x) && (!nonZero || x !== 0));
    if (!ok || v.trim() === '') throw new BadValue(`a number or three (R,G,B)${nonZero ? ', not 0' : ''}`);
    return parts.length === 1 ? parts[0] : parts;
  };

export const fraction = number('a fraction in (0, 1]', (v) => v > 0 && v <= 1);
