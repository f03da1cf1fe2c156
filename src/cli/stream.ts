// Streaming over many images: every file is checked from its first bytes before the work starts
// (a bad file still fails fast), then images are decoded and preprocessed one batch at a time
// (memory stays flat however long the list), a progress line shows the rate and ETA, and per-image
// results go to a JSONL or CSV file as each batch completes (a killed run keeps what it did).
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkImageFile, readImage } from '../image/decode.ts';
import { type Preprocessing, preprocessImage } from '../image/preprocess.ts';
import { writeError } from '../import/atomic-write.ts';
import { formatDuration } from '../train/progress.ts';
import { UsageError } from './errors.ts';
import { checkOutputFile } from './outputs.ts';
import { type OptionSpec, choice } from './options.ts';

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Checks every image file's first bytes; the first bad one is a one-line error naming it. */
export function checkImages(paths: string[]): void {
  for (const p of paths) {
    try {
      checkImageFile(p);
    } catch (e) {
      throw new UsageError(reason(e));
    }
  }
}

/** Decodes and preprocesses `paths` batch by batch: x holds the batch's images, NHWC. */
export async function* imageBatches(paths: string[], pre: Preprocessing, batch: number): AsyncGenerator<{ start: number; paths: string[]; x: Float32Array }> {
  const per = pre.size[0] * pre.size[1] * 3;
  for (let start = 0; start < paths.length; start += batch) {
    const part = paths.slice(start, start + batch);
    const x = new Float32Array(part.length * per);
    part.forEach((file, i) => {
      try {
        x.set(preprocessImage(readImage(file), pre), i * per);
      } catch (e) {
        const msg = reason(e);
        throw new UsageError(msg.startsWith(file) ? msg : `${file}: ${msg}`);
      }
    });
    yield { start, paths: part, x };
  }
}

// ---- progress ----

export type ProgressMode = 'auto' | 'bar' | 'plain' | 'none';

export const PROGRESS_OPTION: OptionSpec = {
  name: 'progress',
  value: 'MODE',
  parse: choice(['auto', 'bar', 'plain', 'none'] as const),
  help: 'auto (default: a bar on a terminal, nothing otherwise), bar, plain (a line every 10 s), none',
};

/** 'images 370/1000  37% [#######.............]  12.3 img/s  ETA 0:51' */
export function formatImageProgress(done: number, total: number, seconds: number, width = 20): string {
  const frac = total > 0 ? Math.min(done / total, 1) : 1;
  const rate = seconds > 0 ? done / seconds : 0;
  const eta = rate > 0 ? formatDuration((total - done) / rate) : '?';
  const fill = Math.round(frac * width);
  return `images ${done}/${total} ${String(Math.floor(frac * 100)).padStart(3)}% [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${rate.toFixed(1)} img/s ETA ${eta}`;
}

/** Whether a stream reaches a terminal (stderr through bin/incept.js's filter: the launcher says so). */
export function isTerminal(out: NodeJS.WriteStream): boolean {
  return out.isTTY === true || (out === process.stderr && process.env.INCEPT_STDERR_TTY === '1');
}

export function terminalColumns(out: NodeJS.WriteStream): number {
  return out.columns ?? (Number(process.env.INCEPT_STDERR_COLUMNS) || 100);
}

/** Progress over a known number of images on stderr. */
export class ImageProgress {
  private readonly mode: 'bar' | 'plain' | 'none';
  private readonly start = Date.now();
  private lastPlain = 0;
  private done = 0;
  private shown = false;

  constructor(
    private readonly total: number,
    mode: ProgressMode,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    // auto: a bar when the user watches stderr on a terminal and the results do not print there too.
    const stdoutTty = process.stdout.isTTY === true;
    this.mode = mode === 'auto' ? (isTerminal(out) && !stdoutTty ? 'bar' : 'none') : mode;
  }

  add(n: number): void {
    this.done += n;
    const line = formatImageProgress(this.done, this.total, (Date.now() - this.start) / 1000);
    if (this.mode === 'bar') {
      this.out.write(`\r${line.slice(0, terminalColumns(this.out) - 1)}\x1b[K`);
      this.shown = true;
    }
    else if (this.mode === 'plain' && (this.done === this.total || Date.now() - this.lastPlain >= 10_000)) {
      this.lastPlain = Date.now();
      this.out.write(`${line}\n`);
    }
  }

  /** Clears the bar (before results are printed on the same terminal); the next add() redraws it. */
  clear(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }

  /** Ends the bar's line (before other output or at the end). */
  finish(): void {
    if (this.shown) this.out.write('\n');
    this.shown = false;
  }
}

// ---- the results file ----

export const RESULTS_OPTION: OptionSpec = {
  name: 'results',
  value: 'FILE',
  needs: 'a .jsonl or .csv file',
  help: 'also write one record per image to FILE as each batch completes (.jsonl: JSON\nlines; .csv: comma-separated with a header), so a stopped run keeps what it did',
};

const csvField = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** A JSONL or CSV file written row by row (CSV: `columns` make the header and order the fields). */
export class ResultsFile {
  private readonly fd: number;
  /** CSV (else JSON lines), by the file's extension. */
  readonly csv: boolean;

  constructor(
    readonly path: string,
    private readonly columns: string[],
  ) {
    this.csv = /\.csv$/i.test(path);
    try {
      mkdirSync(dirname(resolve(path)), { recursive: true });
      this.fd = openSync(path, 'w');
    } catch (e) {
      throw new UsageError(writeError(path, e).message);
    }
    if (this.csv) this.put(`${columns.join(',')}\n`);
  }

  /** Checks the path before the work: a .jsonl or .csv file that can be written. */
  static check(path: string): void {
    if (!/\.(jsonl|csv)$/i.test(path)) throw new UsageError(`--results ${path}: give a .jsonl or .csv file`);
    checkOutputFile('--results', path);
  }

  write(rows: Record<string, unknown>[]): void {
    const text = rows.map((r) => (this.csv ? this.columns.map((c) => csvField(r[c])).join(',') : JSON.stringify(r))).join('\n');
    if (text) this.put(`${text}\n`);
  }

  private put(text: string): void {
    const bytes = Buffer.from(text);
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done);
  }

  close(): void {
    closeSync(this.fd);
  }
}
