// Runs ONNX's own backend node tests (../shared/conformance/onnx-node) on the engine's kernels.
// Each test folder holds model.onnx and test_data_set_0/{input_N,output_N}.pb. A graph runs node by
// node through the op table in ops.ts (ONNX op -> engine kernels, values kept in ONNX layout on the
// host between nodes); outputs are judged as ONNX's runner does: equal shapes, then
// |actual - expected| <= atol + rtol * |expected| elementwise, NaN equal to NaN.
// A test is skipped, with its reason, only when it needs an op, a dtype or an attribute that the
// engine deliberately does not have; everything else runs and passes or fails.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Runtime, getRuntime } from '../gpu/runtime.ts';
import {
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  opsetVersion,
  readModel,
  readTensor,
} from '../import/onnx-proto.ts';
import { OPS, SkipTest, constantValue } from './ops.ts';

/** ONNX's runner defaults (onnx/backend/test/loader): no folder here overrides them. */
export const RTOL = 1e-3;
export const ATOL = 1e-7;

export type Status = 'passed' | 'failed' | 'skipped';

export interface TestResult {
  name: string; // folder relative to the conformance dir, e.g. "test_add" or "pytorch-converted/test_Conv2d"
  op: string; // the graph's op types (Constant aside) joined by '+'; 'Op (expanded)' for a function-expanded test
  status: Status;
  reason: string; // why skipped or failed; '' when passed
  max_abs_err: number | null; // worst |actual - expected| over all outputs; null when nothing was compared
}

export interface OpCounts {
  passed: number;
  failed: number;
  skipped: number;
}

export interface Report extends OpCounts {
  ops: Record<string, OpCounts>;
  tests: TestResult[];
}

/** The ONNX test kinds kept in subfolders of the conformance dir (node tests sit at its top level). */
const SUBFOLDERS = ['pytorch-converted', 'pytorch-operator', 'simple'];

const isTestDir = (dir: string) => existsSync(join(dir, 'model.onnx'));

/** Test folder names relative to dir: node tests first, then each ONNX test kind's subfolder. */
export function listConformanceTests(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`conformance: ${dir} is not a directory (expected ONNX's backend test data, e.g. ../shared/conformance/onnx-node)`);
  }
  const names = readdirSync(dir)
    .filter((e) => e.startsWith('test_') && isTestDir(join(dir, e)))
    .sort();
  for (const sub of SUBFOLDERS) {
    const p = join(dir, sub);
    if (!existsSync(p)) continue;
    for (const e of readdirSync(p).sort()) if (isTestDir(join(p, e))) names.push(`${sub}/${e}`);
  }
  return names;
}

/** A test folder read and judged before running: its model, feeds, expected outputs and any skip reason. */
export interface PreparedTest {
  name: string;
  op: string;
  skip: string | null;
  error: string | null; // the folder could not be read
  model: OnnxModel | null;
  feeds: Map<string, OnnxTensor>; // graph inputs (input_i.pb, then initializers for the rest)
  expected: OnnxTensor[]; // output_i.pb, binding graph.output[i]
}

function opLabel(model: OnnxModel): string {
  const ops: string[] = [];
  for (const n of model.graph.nodes) {
    const op = (n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.` : '') + n.opType;
    if (op !== 'Constant' && !ops.includes(op)) ops.push(op);
  }
  return ops.length ? ops.join('+') : 'Constant';
}

const dataFiles = (dir: string, kind: 'input' | 'output'): string[] => {
  const set = join(dir, 'test_data_set_0');
  if (!existsSync(set)) return [];
  return readdirSync(set)
    .map((f) => /^(input|output)_(\d+)\.pb$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === kind)
    .sort((a, b) => Number(a[2]) - Number(b[2]))
    .map((m) => join(set, m[0]));
};

/** Reads a test folder and decides whether it can run. Never throws: problems become `error`. */
export function prepareTest(dir: string, name: string): PreparedTest {
  const prepared: PreparedTest = { name, op: '?', skip: null, error: null, model: null, feeds: new Map(), expected: [] };
  const folder = join(dir, name);
  try {
    const model = readModel(join(folder, 'model.onnx'));
    prepared.model = model;
    prepared.op = opLabel(model);
    // A function-expanded variant (test_x_expanded, test_x_expanded_ver18) counts under its op.
    const base = /^(.*)_expanded(_ver\d+)?$/.exec(name)?.[1];
    if (base && existsSync(join(dir, base, 'model.onnx'))) prepared.op = `${opLabel(readModel(join(dir, base, 'model.onnx')))} (expanded)`;
    const g = model.graph;
    const inputs = dataFiles(folder, 'input').map((f) => readTensor(f));
    if (inputs.length > g.inputs.length) {
      throw new Error(`${name}: ${inputs.length} input files for ${g.inputs.length} graph inputs`);
    }
    inputs.forEach((t, i) => prepared.feeds.set(g.inputs[i].name, t));
    // IR v3 models list weights as graph inputs too; those not fed take the initializer's value.
    for (const init of g.initializers) if (!prepared.feeds.has(init.name)) prepared.feeds.set(init.name, init);
    for (const vi of g.inputs) {
      if (!prepared.feeds.has(vi.name)) throw new Error(`${name}: graph input '${vi.name}' has no data file and no initializer`);
    }
    prepared.expected = dataFiles(folder, 'output').map((f) => readTensor(f));
    if (prepared.expected.length !== g.outputs.length) {
      throw new Error(`${name}: ${prepared.expected.length} output files for ${g.outputs.length} graph outputs`);
    }
    prepared.skip = skipReason(model, prepared.feeds, prepared.expected);
  } catch (err) {
    prepared.error = (err as Error).message;
  }
  return prepared;
}

const isDefaultDomain = (d: string) => d === '' || d === 'ai.onnx';

/** Why the engine cannot run this graph (a deliberate limit), or null. */
function skipReason(model: OnnxModel, feeds: Map<string, OnnxTensor>, expected: OnnxTensor[]): string | null {
  const g = model.graph;
  const missing = [
    ...new Set(
      g.nodes
        .filter((n) => !isDefaultDomain(n.domain) || !(n.opType in OPS))
        .map((n) => (isDefaultDomain(n.domain) ? n.opType : `${n.domain}.${n.opType}`)),
    ),
  ];
  if (missing.length) return `op${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not in the engine`;
  // The engine computes in float32 only; other dtypes are out of scope (numbers and shapes read on the host aside).
  for (let i = 0; i < g.outputs.length; i++) {
    const dtype = expected[i]?.dtype ?? g.outputs[i].tensor?.dtype;
    if (dtype !== 'float32') return `output '${g.outputs[i].name}' is ${dtype}; the engine computes float32 only`;
  }
  // Values known before running: graph inputs, initializers and Constant nodes.
  const known = new Map(feeds);
  for (const node of g.nodes) {
    if (node.opType === 'Constant' && node.outputs[0]) {
      try {
        known.set(node.outputs[0], constantValue(node));
      } catch {
        /* reported when it runs */
      }
    }
  }
  const opset = opsetVersion(model);
  for (const node of g.nodes) {
    const spec = OPS[node.opType];
    const host = spec.hostInputs ?? [];
    for (let i = 0; i < node.inputs.length; i++) {
      const v = known.get(node.inputs[i]);
      if (v && !host.includes(i) && v.dtype !== 'float32') {
        return `${node.opType} input '${node.inputs[i]}' is ${v.dtype}; the engine computes float32 only`;
      }
    }
    const why = spec.unsupported?.(node, node.inputs.map((n) => known.get(n)), opset);
    if (why) return `${node.opType}: ${why}`;
  }
  return null;
}

/** Runs the graph of a prepared test; the outputs in graph.output order. */
export async function runGraph(rt: Runtime, model: OnnxModel, feeds: Map<string, OnnxTensor>): Promise<OnnxTensor[]> {
  const values = new Map(feeds);
  const opset = opsetVersion(model);
  for (const node of model.graph.nodes) {
    const spec = OPS[node.opType];
    if (!spec || !isDefaultDomain(node.domain)) throw new SkipTest(`op ${node.opType} not in the engine`);
    const inputs = node.inputs.map((n) => {
      if (n === '') return undefined;
      const v = values.get(n);
      if (!v) throw new Error(`${describe(node)}: input '${n}' is not computed before this node`);
      return v;
    });
    const why = spec.unsupported?.(node, inputs, opset);
    if (why) throw new SkipTest(`${node.opType}: ${why}`);
    let outputs: OnnxTensor[];
    try {
      outputs = await spec.run({ rt, node, opset, inputs });
    } catch (err) {
      if (err instanceof SkipTest) throw err;
      throw new Error(`${describe(node)}: ${(err as Error).message}`);
    }
    node.outputs.forEach((name, i) => {
      if (name !== '' && outputs[i]) values.set(name, outputs[i]);
    });
  }
  return model.graph.outputs.map((o) => {
    const v = values.get(o.name);
    if (!v) throw new Error(`graph output '${o.name}' was not produced`);
    return v;
  });
}

function describe(node: OnnxNode): string {
  return `${node.opType}${node.name ? ` '${node.name}'` : ''}`;
}

/** Compares like numpy.testing.assert_allclose(actual, expected, rtol, atol) after an exact shape check. */
export function compareOutputs(
  actual: OnnxTensor[],
  expected: OnnxTensor[],
  names: string[],
): { ok: boolean; reason: string; maxAbsErr: number | null } {
  let maxAbsErr: number | null = null;
  for (let o = 0; o < expected.length; o++) {
    const a = actual[o];
    const e = expected[o];
    const what = `output '${names[o] ?? o}'`;
    if (a.dtype !== e.dtype) return { ok: false, reason: `${what}: dtype ${a.dtype}, expected ${e.dtype}`, maxAbsErr };
    if (a.dims.length !== e.dims.length || a.dims.some((d, i) => d !== e.dims[i])) {
      return { ok: false, reason: `${what}: shape [${a.dims}], expected [${e.dims}]`, maxAbsErr };
    }
    const av = a.data as Float32Array;
    const ev = e.data as Float32Array;
    let worst = -1;
    let worstExcess = 0;
    maxAbsErr ??= 0;
    for (let i = 0; i < ev.length; i++) {
      const x = av[i];
      const y = ev[i];
      // NaN matches NaN and equal infinities match (numpy's assert_allclose).
      if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
      const err = Math.abs(x - y);
      maxAbsErr = Number.isNaN(err) ? Infinity : Math.max(maxAbsErr, err);
      const excess = err - (ATOL + RTOL * Math.abs(y));
      if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
        worst = i;
        worstExcess = excess;
      }
    }
    if (worst >= 0) {
      const bad = Array.from(ev, (y, i) => Math.abs(av[i] - y) > ATOL + RTOL * Math.abs(y) || Number.isNaN(av[i]) !== Number.isNaN(y)).filter(Boolean).length;
      return {
        ok: false,
        reason:
          `${what}: ${bad} of ${ev.length} elements differ; worst at ${worst}: got ${av[worst]}, expected ${ev[worst]} ` +
          `(rtol ${RTOL}, atol ${ATOL})`,
        maxAbsErr,
      };
    }
  }
  return { ok: true, reason: '', maxAbsErr };
}

/** Runs one prepared test. Never throws: errors become a failed result. */
export async function runPrepared(rt: Runtime, p: PreparedTest): Promise<TestResult> {
  const base = { name: p.name, op: p.op };
  if (p.error !== null || !p.model) return { ...base, status: 'failed', reason: p.error ?? 'no model', max_abs_err: null };
  if (p.skip !== null) return { ...base, status: 'skipped', reason: p.skip, max_abs_err: null };
  try {
    const actual = await runGraph(rt, p.model, p.feeds);
    const cmp = compareOutputs(actual, p.expected, p.model.graph.outputs.map((o) => o.name));
    return { ...base, status: cmp.ok ? 'passed' : 'failed', reason: cmp.reason, max_abs_err: cmp.maxAbsErr };
  } catch (err) {
    if (err instanceof SkipTest) return { ...base, status: 'skipped', reason: err.message, max_abs_err: null };
    // Let pending GPU errors surface here rather than in the next test.
    await rt.sync().catch(() => undefined);
    return { ...base, status: 'failed', reason: (err as Error).message, max_abs_err: null };
  }
}

export function summarize(tests: TestResult[]): Report {
  const report: Report = { passed: 0, failed: 0, skipped: 0, ops: {}, tests };
  for (const t of tests) {
    report[t.status]++;
    report.ops[t.op] ??= { passed: 0, failed: 0, skipped: 0 };
    report.ops[t.op][t.status]++;
  }
  return report;
}

export interface RunOptions {
  /** Only tests whose name passes this filter. */
  filter?: (name: string) => boolean;
  /** Called after each test (progress output). */
  onResult?: (r: TestResult) => void;
}

/** Runs every test folder under dir (see listConformanceTests) and reports the counts per op. */
export async function runConformance(dir: string, opts: RunOptions = {}): Promise<Report> {
  const rt = await getRuntime();
  const results: TestResult[] = [];
  for (const name of listConformanceTests(dir)) {
    if (opts.filter && !opts.filter(name)) continue;
    const r = await runPrepared(rt, prepareTest(dir, name));
    opts.onResult?.(r);
    results.push(r);
  }
  return summarize(results);
}
