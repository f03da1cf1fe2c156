// Runs ONNX's own backend node tests (../shared/conformance/onnx-node) the way a user's model runs:
// each test's model.onnx goes through the ONNX importer (src/import/onnx-model.ts, the one ONNX op
// table) and the compiler (compile() of src/graph/executor.ts). The first float32 input is the
// graph's input, fed in ONNX's layout (the importer's io 'onnx'); the other inputs are bound as
// constants, as a model's weights, shapes and axes are. Outputs are judged as ONNX's runner does:
// equal shapes, then |actual - expected| <= atol + rtol * |expected| elementwise, NaN equal to NaN.
// A test is skipped, with its reason, only when it needs an op, a dtype or an attribute that the
// importer deliberately refuses; everything else runs and passes or fails.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Runtime, getRuntime } from '../gpu/runtime.ts';
import { compile } from '../graph/executor.ts';
import { type OnnxImport, OnnxUnsupportedError, SUPPORTED_ONNX_OPS, importOnnxDetailed } from '../import/onnx-model.ts';
import { type OnnxModel, type OnnxTensor, readModel, readTensor } from '../import/onnx-proto.ts';


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
  imported: Imported | null; // the importer's graph, when the test runs
}

/** A test's model as the importer made it, with the input fed at run time. */
interface Imported extends OnnxImport {
  input: string;
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
  const prepared: PreparedTest = { name, op: '?', skip: null, error: null, model: null, feeds: new Map(), expected: [], imported: null };
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
    if (prepared.skip === null) {
      const r = importTest(model, prepared.feeds);
      if (typeof r === 'string') prepared.skip = r;
      else prepared.imported = r;
    }
  } catch (err) {
    prepared.error = (err as Error).message;
  }
  return prepared;
}

const isDefaultDomain = (d: string) => d === '' || d === 'ai.onnx';
const SUPPORTED = new Set(SUPPORTED_ONNX_OPS);

/** Why the engine cannot run this graph (a deliberate limit), or null. */
function skipReason(model: OnnxModel, feeds: Map<string, OnnxTensor>, expected: OnnxTensor[]): string | null {
  const g = model.graph;
  const missing = [
    ...new Set(
      g.nodes
        .filter((n) => !isDefaultDomain(n.domain) || !SUPPORTED.has(n.opType))
        .map((n) => (isDefaultDomain(n.domain) ? n.opType : `${n.domain}.${n.opType}`)),
    ),
  ];
  if (missing.length) return `op${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not in the ONNX importer`;
  // The engine computes in float32 only; other dtypes are out of scope (numbers and shapes read on the host aside).
  for (let i = 0; i < g.outputs.length; i++) {
    const dtype = expected[i]?.dtype ?? g.outputs[i].tensor?.dtype;
    if (dtype !== 'float32') return `output '${g.outputs[i].name}' is ${dtype}; the engine computes float32 only`;
  }
  if (!graphInput(model, feeds)) {
    const dtypes = g.inputs.map((i) => `${i.name} ${feeds.get(i.name)?.dtype}`).join(', ');
    return `no float32 input to feed (${dtypes || 'no inputs'}); the engine computes float32 only`;
  }
  return null;
}

/** The input fed at run time: the first float32 graph input that is not an initializer. */
function graphInput(model: OnnxModel, feeds: Map<string, OnnxTensor>): string | undefined {
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  return model.graph.inputs.find((i) => !inits.has(i.name) && feeds.get(i.name)?.dtype === 'float32')?.name;
}

/**
 * Imports the test's model as a user's model is imported, ONNX layout at the boundary: the fed
 * input is the graph's, the other inputs are constants. A refusal of the importer is the skip reason.
 */
function importTest(model: OnnxModel, feeds: Map<string, OnnxTensor>): Imported | string {
  const input = graphInput(model, feeds)!;
  const x = feeds.get(input)!;
  const constants: Record<string, OnnxTensor> = {};
  for (const [name, t] of feeds) if (name !== input) constants[name] = t;
  try {
    const opts = { io: 'onnx' as const, constants, batch: x.dims[0], inputShape: x.dims.slice(1) };
    return { ...importOnnxDetailed(model, opts, 'model.onnx'), input };
  } catch (err) {
    if (err instanceof OnnxUnsupportedError) return err.message.replace(/^model\.onnx: /, 'importer: ');
    throw err;
  }
}

/** Compiles an imported test graph and runs it on the feeds; the outputs in graph.output order. */
export async function runImported(rt: Runtime, imported: Imported, feeds: Map<string, OnnxTensor>): Promise<OnnxTensor[]> {
  const plan = compile(rt, imported.graph);
  try {
    const out = await plan.runToHost({ [imported.input]: feeds.get(imported.input)!.data as Float32Array });
    return imported.outputs.map((o) => ({ name: o.name, dtype: 'float32', dims: o.dims, data: out[o.value] }));
  } finally {
    plan.destroy();
  }
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
    if (!p.imported) throw new Error('not imported');
    const actual = await runImported(rt, p.imported, p.feeds);
    const cmp = compareOutputs(actual, p.expected, p.model.graph.outputs.map((o) => o.name));
    return { ...base, status: cmp.ok ? 'passed' : 'failed', reason: cmp.reason, max_abs_err: cmp.maxAbsErr };
  } catch (err) {
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
