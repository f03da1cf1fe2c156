// Shared output of every bench suite: one table on stdout and, with --json FILE, the same figures
// as JSON: {"suite", "adapter", "timing", "cases": [{"name", "flops", "ms", "gflops", "peer", "peer_ms",
// "speedup", "peak_bytes"}]}, null where a field does not apply.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from '../src/cli/errors.ts';
import { writeFileAtomic } from '../src/import/atomic-write.ts';

export { UsageError };

export interface CaseResult {
  name: string;
  /** Floating-point operations per run (2 x multiply-adds), or null. */
  flops: number | null;
  /** Our median milliseconds per run. */
  ms: number | null;
  gflops: number | null;
  /** The peer implementation's name, e.g. 'tfjs-webgpu'. */
  peer: string | null;
  peer_ms: number | null;
  /** peer_ms / ms: above 1 means incept is faster. */
  speedup: number | null;
  /** GPU memory the case holds while it runs (our side). */
  peak_bytes: number | null;
  /** The kernel variant the case ran (and why: tuned, default), where the kernel has variants. */
  variant?: string;
}

export interface Report {
  suite: string;
  adapter: string;
  /** How the figures were taken (GPU timestamps or wall clock, warm-up, median of how many). */
  timing: string;
  cases: CaseResult[];
  /** Checks the suite made that did not hold (e.g. soak's memory flatness); any makes the bench exit non-zero. */
  failures?: string[];
  /** Suite-specific figures written as they are (the transfer suite's AUCs, intervals, ...). */
  figures?: unknown;
}

/** Fills gflops and speedup from the timings; `flops` is 2 x multiply-adds. */
export function result(
  name: string,
  flops: number | null,
  ms: number | null,
  peer: { name: string; ms: number | null } | null,
  peakBytes: number | null,
): CaseResult {
  const ok = (v: number | null): v is number => v !== null && Number.isFinite(v) && v > 0;
  return {
    name,
    flops,
    ms: ok(ms) ? ms : null,
    gflops: ok(ms) && flops !== null ? flops / (ms * 1e6) : null,
    peer: peer?.name ?? null,
    peer_ms: peer && ok(peer.ms) ? peer.ms : null,
    speedup: peer && ok(peer.ms) && ok(ms) ? peer.ms / ms : null,
    peak_bytes: peakBytes,
  };
}

const num = (v: number | null, digits: number) => (v === null ? '-' : v.toFixed(digits));
const mib = (v: number | null) => (v === null ? '-' : (v / 2 ** 20).toFixed(1));

export function formatTable(report: Report): string {
  const header = ['case', 'ms', 'GFLOP/s', 'peer', 'peer ms', 'peer GFLOP/s', 'speed-up', 'peak MiB'];
  const rows = report.cases.map((c) => [
    c.name,
    num(c.ms, 3),
    num(c.gflops, 1),
    c.peer ?? '-',
    num(c.peer_ms, 3),
    c.flops !== null && c.peer_ms !== null ? (c.flops / (c.peer_ms * 1e6)).toFixed(1) : '-',
    c.speedup === null ? '-' : `${c.speedup.toFixed(2)}x`,
    mib(c.peak_bytes),
  ]);
  // A 'variant' column when any case names the kernel variant it ran.
  if (report.cases.some((c) => c.variant !== undefined)) {
    header.push('variant');
    report.cases.forEach((c, i) => rows[i].push(c.variant ?? '-'));
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((v, i) => (i === 0 || header[i] === 'variant' ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd();
  return [
    `suite ${report.suite} on ${report.adapter}`,
    `timing: ${report.timing}`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}

export function writeJson(file: string, report: Report): void {
  mkdirSync(dirname(file), { recursive: true });
  // Atomic: a bench killed mid-write leaves the previous JSON, never half of one.
  writeFileAtomic(file, [Buffer.from(`${JSON.stringify(report, null, 2)}\n`)]);
}

/** Options every suite understands; the rest of argv is left to the suite. */
export interface BenchArgs {
  json: string | null;
  rest: string[];
}

export function parseBenchArgs(argv: string[]): BenchArgs {
  let json: string | null = null;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') {
      json = argv[++i] ?? null;
      if (!json || json.startsWith('--')) throw new UsageError('--json needs a file name');
    } else if (a.startsWith('--json=')) {
      json = a.slice('--json='.length);
    } else {
      rest.push(a);
    }
  }
  return { json, rest };
}
