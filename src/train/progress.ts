// What a fine-tuning run tells people and leaves behind:
//   - a progress bar on a TTY (one line rewritten in place: epoch, bar, loss, accuracy, images/s,
//     ETA) and plain, greppable lines otherwise (logs, CI);
//   - the metrics log, RUN_DIR/metrics.jsonl: one JSON object per line, {"type": "step", ...} for
//     each update and {"type": "epoch", ...} with the validation metrics for each epoch;
//   - the curves, RUN_DIR/curves.png: loss and accuracy against the step, train and validation.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { trainingCurvesPng } from '../report/figures.ts';

export interface StepRecord {
  type: 'step';
  epoch: number; // 1-based
  step: number; // updates done, after this one
  loss: number;
  accuracy: number;
  lr: number;
  imagesPerSec: number;
}

export interface EpochRecord {
  type: 'epoch';
  epoch: number; // 1-based
  step: number;
  trainLoss: number;
  trainAccuracy: number;
  /** Validation metrics (absent without a validation set). */
  valLoss?: number;
  valAccuracy?: number;
  /** Binary: ROC AUC of the positive class; more classes: macro one-vs-rest AUC. */
  valAuc?: number;
  valCount?: number;
  seconds: number;
}

export type MetricsRecord = StepRecord | EpochRecord;

// ---- metrics log ----

/**
 * The records of a metrics.jsonl file (none if it does not exist); bad lines are an error naming
 * the line, except a torn last line (no newline after it: a process killed while appending it),
 * which is dropped.
 */
export function readMetricsLog(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricsRecord[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      if (i === lines.length - 1) return; // torn: the last line, never finished with its newline
      throw new Error(`${path}:${i + 1}: not a JSON line`);
    }
  });
  return out;
}

/** JSON with NaN / Infinity written as null (JSON has neither). */
const toJson = (r: MetricsRecord) => JSON.stringify(r, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));

export class MetricsLog {
  constructor(readonly path: string) {}

  append(r: MetricsRecord): void {
    appendFileSync(this.path, `${toJson(r)}\n`);
  }

  /**
   * Keeps only what a checkpoint covers (steps up to `step`, epochs up to `epochs`), so a resumed
   * run's log reads as if it had never stopped. Rewritten atomically.
   */
  truncate(step: number, epochs: number): MetricsRecord[] {
    const kept = readMetricsLog(this.path).filter((r) => (r.type === 'step' ? r.step <= step : r.epoch <= epochs));
    writeFileAtomic(this.path, [Buffer.from(kept.map((r) => `${toJson(r)}\n`).join(''))]);
    return kept;
  }

  records(): MetricsRecord[] {
    return readMetricsLog(this.path);
  }
}

/**
 * Loss and accuracy curves from metrics records as PNG bytes: per-step training values (smoothed
 * over a window when there are many) and per-epoch validation values, against the step.
 */
export function curvesPng(records: MetricsRecord[], title = 'Fine-tuning'): Buffer | null {
  const steps = records.filter((r): r is StepRecord => r.type === 'step');
  const epochs = records.filter((r): r is EpochRecord => r.type === 'epoch');
  if (steps.length === 0 && epochs.length === 0) return null;
  const window = Math.max(1, Math.floor(steps.length / 100));
  const train = [];
  for (let i = 0; i < steps.length; i += window) {
    const chunk = steps.slice(i, i + window);
    const mean = (f: (r: StepRecord) => number) => chunk.reduce((s, r) => s + f(r), 0) / chunk.length;
    train.push({ step: chunk[chunk.length - 1].step, loss: mean((r) => r.loss), accuracy: mean((r) => r.accuracy) });
  }
  const validation = epochs.filter((e) => e.valLoss !== undefined).map((e) => ({ step: e.step, loss: e.valLoss ?? undefined, accuracy: e.valAccuracy ?? undefined }));
  try {
    return trainingCurvesPng({ train, validation }, { title, xLabel: 'step' });
  } catch {
    return null; // nothing finite to draw yet
  }
}

/** Writes curves.png (atomically) when there is something to draw. */
export function writeCurves(path: string, records: MetricsRecord[], title?: string): boolean {
  const png = curvesPng(records, title);
  if (!png) return false;
  writeFileAtomic(path, [png]);
  return true;
}

// ---- progress ----

export type ProgressMode = 'bar' | 'plain' | 'none';

export interface ProgressState {
  epoch: number; // 1-based
  epochs: number;
  /** Batch within the epoch (1-based) and batches per epoch. */
  batch: number;
  batches: number;
  step: number;
  loss: number;
  accuracy: number;
  imagesPerSec: number;
  /** Seconds left for the whole run (NaN while unknown). */
  eta: number;
}

/** 75 -> '1:15', 3725 -> '1:02:05'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

const f = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : 'nan');

/** The plain line: 'epoch 1/3 batch 12/40 step 12 loss 0.6931 acc 0.500 4.2 img/s eta 1:15'. */
export function formatProgressLine(s: ProgressState): string {
  return `epoch ${s.epoch}/${s.epochs} batch ${s.batch}/${s.batches} step ${s.step} loss ${f(s.loss, 4)} acc ${f(s.accuracy, 3)} ${f(s.imagesPerSec, 1)} img/s eta ${formatDuration(s.eta)}`;
}

/** The bar: 'epoch 1/3 [=========>          ] 12/40 loss 0.6931 acc 0.500 4.2 img/s ETA 1:15'. */
export function formatProgressBar(s: ProgressState, width = 24): string {
  const frac = s.batches > 0 ? Math.min(1, s.batch / s.batches) : 0;
  const done = Math.round(frac * width);
  const bar = done >= width ? '='.repeat(width) : `${'='.repeat(Math.max(0, done - 1))}${done > 0 ? '>' : ''}${' '.repeat(width - Math.max(done, 0))}`;
  return `epoch ${s.epoch}/${s.epochs} [${bar.slice(0, width)}] ${s.batch}/${s.batches} loss ${f(s.loss, 4)} acc ${f(s.accuracy, 3)} ${f(s.imagesPerSec, 1)} img/s ETA ${formatDuration(s.eta)}`;
}

interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Shows progress on a stream: a bar redrawn in place on a TTY, plain lines otherwise. */
export class Progress {
  readonly mode: ProgressMode;
  private lastPlain = 0;
  private barShown = false;

  constructor(
    private readonly out: Out = process.stderr,
    mode: ProgressMode | 'auto' = 'auto',
    /** Plain mode: at most one line per this many seconds (epoch ends are always shown). */
    private readonly plainInterval = 10,
  ) {
    // Through bin/incept.js stderr is a pipe to its filter; the launcher says whether a terminal is behind it.
    const tty = out.isTTY === true || (out === process.stderr && process.env.INCEPT_STDERR_TTY === '1');
    this.mode = mode === 'auto' ? (tty ? 'bar' : 'plain') : mode;
  }

  update(s: ProgressState): void {
    if (this.mode === 'bar') {
      const cols = this.out.columns ?? (Number(process.env.INCEPT_STDERR_COLUMNS) || 100);
      this.out.write(`\r${formatProgressBar(s).slice(0, cols - 1)}\x1b[K`);
      this.barShown = true;
    } else if (this.mode === 'plain') {
      const now = Date.now() / 1000;
      if (s.step === 1 || s.batch === s.batches || now - this.lastPlain >= this.plainInterval) {
        this.out.write(`${formatProgressLine(s)}\n`);
        this.lastPlain = now;
      }
    }
  }

  /** A message on its own line (epoch summaries, notes), not overwritten by the bar. */
  message(text: string): void {
    if (this.mode === 'none') return;
    if (this.barShown) {
      this.out.write('\r\x1b[K');
      this.barShown = false;
    }
    this.out.write(`${text}\n`);
  }

  /** Ends the bar's line. */
  done(): void {
    if (this.barShown) this.out.write('\n');
    this.barShown = false;
  }
}

/** 'epoch 2/3 done: train loss 0.4123 acc 0.812 | val loss 0.5012 acc 0.750 auc 0.833 (24 images) | 41 s'. */
export function formatEpoch(r: EpochRecord, epochs: number): string {
  const val = r.valLoss !== undefined ? ` | val loss ${f(r.valLoss, 4)} acc ${f(r.valAccuracy ?? NaN, 3)}${r.valAuc !== undefined ? ` auc ${f(r.valAuc, 3)}` : ''} (${r.valCount} images)` : '';
  return `epoch ${r.epoch}/${epochs} done: train loss ${f(r.trainLoss, 4)} acc ${f(r.trainAccuracy, 3)}${val} | ${formatDuration(r.seconds)}`;
}
