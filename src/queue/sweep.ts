// Fine-tuning sweeps (Esteva et al.: "the best tuning depth should be explored"): every
// combination of the --sweep values is one job, and each job is a normal `incept train` run
// directory, so a worker killed mid-run leaves a checkpoint that the retry resumes from
// (`incept train --resume`), and a finished run (model.safetensors written) is not run again.
// The comparison table and plot read each run's metrics.jsonl.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { Axes, Canvas, PALETTE, type LegendEntry, formatTicks, niceRange, niceTicks, plotMargins, textWidth } from '../report/plot.ts';
import { RUN_FILES } from '../train/finetune.ts';
import { type EpochRecord, readMetricsLog } from '../train/progress.ts';
import type { TrainJob } from './jobs.ts';

/** A `--sweep name=v1,v2,...` argument: the train option (without --) and its values. */
export interface SweepAxis {
  option: string;
  values: string[];
}

export function parseSweep(spec: string): SweepAxis {
  const eq = spec.indexOf('=');
  const option = eq > 0 ? spec.slice(0, eq).trim().replace(/^--/, '') : '';
  const values = eq > 0 ? spec.slice(eq + 1).split(',').map((v) => v.trim()).filter((v) => v !== '') : [];
  if (!/^[a-z][a-z0-9-]*$/.test(option) || values.length === 0) throw new Error(`--sweep '${spec}' is not OPTION=V1,V2,... (e.g. trainable-from=Mixed_7c,Mixed_6e)`);
  if (new Set(values).size !== values.length) throw new Error(`--sweep ${option}: a value is given twice`);
  return { option, values };
}

/** Every combination of the axes' values, the first axis varying slowest. */
export function configurations(axes: SweepAxis[]): Record<string, string>[] {
  let out: Record<string, string>[] = [{}];
  for (const a of axes) out = out.flatMap((c) => a.values.map((v) => ({ ...c, [a.option]: v })));
  return out;
}

/** A configuration's run directory name, e.g. trainable-from=Mixed_6e,lr=0.001. */
export function configName(config: Record<string, string>): string {
  return Object.entries(config)
    .map(([k, v]) => `${k}=${v.replace(/[^A-Za-z0-9._-]/g, '_')}`)
    .join(',');
}

export interface TrainResult {
  runDir: string;
  /** The run was finished already (a retry of done work). */
  reused: boolean;
}

/** Runs (or resumes, or skips) one configuration's training in this process. */
export async function runTrainJob(job: TrainJob): Promise<TrainResult> {
  if (existsSync(join(job.runDir, RUN_FILES.model))) return { runDir: job.runDir, reused: true };
  // The train command owns run directories (run.json, resume rules); it runs in-process here.
  const { trainMain } = await import('../cli/train.ts');
  const quiet = ['--progress', 'none'];
  if (existsSync(join(job.runDir, RUN_FILES.checkpoint))) {
    await trainMain(['--resume', job.runDir, ...quiet]);
  } else {
    // Killed before its first checkpoint: nothing worth keeping; start the run again.
    if (existsSync(job.runDir)) for (const f of readdirSync(job.runDir)) rmSync(join(job.runDir, f), { recursive: true, force: true });
    await trainMain([...job.argv, '--out', job.runDir, ...quiet]);
  }
  return { runDir: job.runDir, reused: false };
}

export interface SweepRow {
  config: Record<string, string>;
  runDir: string;
  epochs: number;
  /** Validation AUC after each epoch (null where the run had no validation AUC). */
  aucs: (number | null)[];
  finalAuc: number | null;
  bestAuc: number | null;
  finalAccuracy: number | null;
}

/** One row per configuration, from its run directory's metrics.jsonl. */
export function sweepRow(config: Record<string, string>, runDir: string): SweepRow {
  const file = join(runDir, RUN_FILES.metrics);
  const epochs = existsSync(file) ? (readMetricsLog(file).filter((r) => r.type === 'epoch') as EpochRecord[]) : [];
  const aucs = epochs.map((e) => (typeof e.valAuc === 'number' && Number.isFinite(e.valAuc) ? e.valAuc : null));
  const defined = aucs.filter((a): a is number => a !== null);
  const last = epochs.at(-1);
  return {
    config,
    runDir,
    epochs: epochs.length,
    aucs,
    finalAuc: aucs.at(-1) ?? null,
    bestAuc: defined.length ? Math.max(...defined) : null,
    finalAccuracy: last?.valAccuracy ?? null,
  };
}

const fixed = (v: number | null) => (v === null ? '-' : v.toFixed(4));

/** The comparison as a Markdown table, best final AUC first. */
export function sweepTable(rows: SweepRow[]): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.config)))];
  const sorted = [...rows].sort((a, b) => (b.finalAuc ?? -1) - (a.finalAuc ?? -1));
  const header = [...keys, 'epochs', 'val AUC (final)', 'val AUC (best)', 'val accuracy'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of sorted) lines.push(`| ${[...keys.map((k) => r.config[k] ?? ''), String(r.epochs), fixed(r.finalAuc), fixed(r.bestAuc), fixed(r.finalAccuracy)].join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}

/** Validation AUC per epoch, one line per configuration, as PNG bytes. */
export function sweepPlotPng(rows: SweepRow[], title = 'Fine-tuning sweep: validation AUC'): Buffer {
  const width = 720;
  const height = 420;
  const canvas = new Canvas(width, height);
  const maxEpoch = Math.max(1, ...rows.map((r) => r.aucs.length));
  const all = rows.flatMap((r) => r.aucs.filter((a): a is number => a !== null));
  let yr = all.length ? niceRange(Math.min(...all), Math.max(...all)) : { min: 0, max: 1 };
  yr = { min: Math.max(0, yr.min), max: Math.min(1, yr.max) };
  if (!(yr.max > yr.min)) yr = { min: Math.max(0, yr.min - 0.05), max: Math.min(1, yr.max + 0.05) > yr.min ? Math.min(1, yr.max + 0.05) : 1 };
  const yTicks = niceTicks(yr.min, yr.max);
  const decor = { title, xLabel: 'epoch', yLabel: 'validation AUC' };
  const m = plotMargins(decor, Math.max(...formatTicks(yTicks).map((t) => textWidth(t))));
  const xr = maxEpoch > 1 ? { min: 1, max: maxEpoch } : { min: 0.5, max: 1.5 };
  const ax = new Axes(canvas, { x: m.left, y: m.top, w: width - m.left - m.right, h: height - m.top - m.bottom }, xr, yr);
  ax.decorate({ ...decor, yTicks, xTicks: Array.from({ length: maxEpoch }, (_, i) => i + 1) });
  const legend: LegendEntry[] = [];
  rows.forEach((r, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = r.aucs.map((a, e) => [e + 1, a] as const).filter((p): p is readonly [number, number] => p[1] !== null);
    if (pts.length === 0) return;
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    if (pts.length > 1) ax.line(xs, ys, { color, width: 2 });
    ax.markers(xs, ys, { color, radius: 3.5 });
    legend.push({ label: configName(r.config), color, kind: 'line+marker' });
  });
  if (legend.length) ax.legend(legend, 'bottom right');
  return canvas.toPng();
}

/** Writes sweep.md, sweep.json and sweep.png into `out`, atomically; returns the table. */
export function writeSweepReport(out: string, rows: SweepRow[]): string {
  const table = sweepTable(rows);
  writeFileAtomic(join(out, 'sweep.md'), [Buffer.from(table)]);
  writeFileAtomic(join(out, 'sweep.json'), [Buffer.from(`${JSON.stringify(rows, null, 2)}\n`)]);
  writeFileAtomic(join(out, 'sweep.png'), [sweepPlotPng(rows)]);
  return table;
}
