// `incept conformance`: runs ONNX's backend node tests on the engine and prints a per-op table.
//   --dir DIR     the conformance folder (default ../shared/conformance/onnx-node next to the checkout)
//   --json FILE   also write the Report as JSON
//   --filter STR  only tests whose name contains STR
//   --verbose     print every test as it finishes
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { closeRuntime } from '../gpu/runtime.ts';
import { UsageError } from '../cli/errors.ts';
import { type OptionSpec, helpText, parseOptions } from '../cli/options.ts';
import { type Report, runConformance } from './runner.ts';

export const DEFAULT_DIR = fileURLToPath(new URL('../../../shared/conformance/onnx-node', import.meta.url));

const USAGE = 'incept conformance [--dir DIR] [--json FILE] [--filter STR] [--verbose]';

const OPTIONS: OptionSpec[] = [
  { name: 'dir', value: 'DIR', help: 'the conformance folder (default ../shared/conformance/onnx-node next to the checkout)' },
  { name: 'json', value: 'FILE', help: 'also write the report as JSON' },
  { name: 'filter', value: 'STR', help: 'only tests whose name contains STR' },
  { name: 'verbose', short: 'v', help: 'print every test as it finishes' },
];

const HELP = helpText(USAGE, "Runs ONNX's backend node tests for the ops incept implements and prints a per-op table.", OPTIONS);

interface Args {
  dir: string;
  json: string | null;
  filter: string | null;
  verbose: boolean;
}

/** The options of argv; null for --help. */
function parseConformanceArgs(argv: string[]): Args | null {
  const p = parseOptions('conformance', USAGE, OPTIONS, argv);
  if (p.help) return null;
  if (p.positionals.length) throw new UsageError(`conformance: unexpected argument '${p.positionals[0]}' (usage: ${USAGE})`);
  const v = p.values as Record<string, never>;
  return { dir: v.dir ?? DEFAULT_DIR, json: v.json ?? null, filter: v.filter ?? null, verbose: v.verbose ?? false };
}

/** The per-op table, then skipped and failed tests with their reasons, then the totals. */
export function formatReport(report: Report): string {
  const lines: string[] = [];
  const ops = Object.keys(report.ops).sort((a, b) => a.localeCompare(b));
  const w = Math.max(2, ...ops.map((o) => o.length));
  const row = (op: string, p: number | string, f: number | string, s: number | string) =>
    `${op.padEnd(w)}  ${String(p).padStart(6)}  ${String(f).padStart(6)}  ${String(s).padStart(7)}`;
  lines.push(row('op', 'passed', 'failed', 'skipped'));
  lines.push('-'.repeat(w + 25));
  for (const op of ops) {
    const c = report.ops[op];
    lines.push(row(op, c.passed, c.failed, c.skipped));
  }
  lines.push('-'.repeat(w + 25));
  lines.push(row('total', report.passed, report.failed, report.skipped));
  const skipped = report.tests.filter((t) => t.status === 'skipped');
  if (skipped.length) {
    lines.push('', `skipped (${skipped.length}):`);
    for (const t of skipped) lines.push(`  ${t.name}: ${t.reason}`);
  }
  const failed = report.tests.filter((t) => t.status === 'failed');
  if (failed.length) {
    lines.push('', `FAILED (${failed.length}):`);
    for (const t of failed) lines.push(`  ${t.name} [${t.op}]: ${t.reason}`);
  }
  lines.push(
    '',
    `${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped of ${report.tests.length} ONNX conformance tests`,
  );
  return lines.join('\n');
}

/**
 * Entry point for `incept conformance`; returns the exit status: 0 when no test failed, 1 when one
 * did. A usage error is thrown as a UsageError (the CLI prints it as one line `incept: error: ...`).
 */
export async function conformanceMain(argv: string[]): Promise<number> {
  const args = parseConformanceArgs(argv);
  if (!args) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  try {
    const report = await runConformance(args.dir, {
      filter: args.filter ? (n) => n.includes(args.filter!) : undefined,
      onResult: args.verbose
        ? (t) => {
            const err = t.max_abs_err === null ? '' : ` max_abs_err ${t.max_abs_err.toExponential(2)}`;
            process.stdout.write(`${t.status.padEnd(7)} ${t.name}${err}${t.reason ? `: ${t.reason}` : ''}\n`);
          }
        : undefined,
    });
    process.stdout.write(`${formatReport(report)}\n`);
    if (args.json) {
      writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(`report written to ${args.json}\n`);
    }
    return report.failed > 0 ? 1 : 0;
  } catch (err) {
    process.stderr.write(`incept: error: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await closeRuntime();
  }
}
