// Kernel suite: Inception v3's characteristic convolutions at batch 1 (x NHWC, w HWIO) and a
// 1024^3 matmul, in incept and in TensorFlow.js's WebGPU backend on the same adapter.
//
//   npm run bench -- kernels [--json FILE] [--case TEXT] [--runs N] [--wall] [--no-peer]
//
// ms is the median per run after warm-up. With 'timestamp-query' it is GPU time from timestamps
// (incept: one compute pass; tfjs: tf.time()'s kernelMs, the sum over the kernels the op issues);
// otherwise (or with --wall) wall clock from submit until the queue reports the work done, for both.
// GFLOP/s = 2 * multiply-adds / time. Both sides get the same input data and their outputs are
// compared, so a wrong kernel cannot post a good time. The 'variant' column names the kernel variant
// each case took and why (tuned: from the tuning cache; default: the adapter's default rule).
import { type Dispatch } from '../src/gpu/recorder.ts';
import { type Runtime, getRuntime } from '../src/gpu/runtime.ts';
import { type Tensor, empty, upload } from '../src/gpu/tensor.ts';
import { type TimingMethod, measure } from '../src/gpu/timing.ts';
import { recordChoices } from '../src/kernels/choice.ts';
import { type Conv2dAttrs, conv2dDispatches, conv2dScratchBytes } from '../src/kernels/conv2d.ts';
import { matmulDispatches, matmulScratchBytes } from '../src/kernels/matmul.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';
import { type TfPeer, type TfTensor, loadTfjs } from './tfjs.ts';
import { seededUniform } from '../src/kernels/seeded.ts';

interface ConvCase {
  kind: 'conv';
  name: string;
  x: [number, number, number, number]; // N,H,W,C
  w: [number, number, number, number]; // KH,KW,Ci,Co
  stride: number;
  padding: 'SAME' | 'VALID';
}
interface MatmulCase {
  kind: 'matmul';
  name: string;
  m: number;
  k: number;
  n: number;
}
type Case = ConvCase | MatmulCase;

const conv = (name: string, x: ConvCase['x'], w: ConvCase['w'], stride: number, padding: ConvCase['padding']): ConvCase => ({
  kind: 'conv',
  name: `${name} ${x[1]}x${x[2]}x${x[3]}->${w[3]}${stride > 1 ? ` s${stride}` : ''} ${padding}`,
  x,
  w,
  stride,
  padding,
});

export const CASES: Case[] = [
  conv('Conv2d_1a_3x3', [1, 299, 299, 3], [3, 3, 3, 32], 2, 'VALID'),
  conv('Conv2d_2b_3x3', [1, 147, 147, 32], [3, 3, 32, 64], 1, 'SAME'),
  conv('Mixed_5b 1x1', [1, 35, 35, 192], [1, 1, 192, 64], 1, 'SAME'),
  conv('Mixed_5b 5x5', [1, 35, 35, 48], [5, 5, 48, 64], 1, 'SAME'),
  conv('Mixed_6b 1x7', [1, 17, 17, 128], [1, 7, 128, 128], 1, 'SAME'),
  conv('Mixed_6b 7x1', [1, 17, 17, 128], [7, 1, 128, 192], 1, 'SAME'),
  conv('Mixed_7c 3x3', [1, 8, 8, 448], [3, 3, 448, 384], 1, 'SAME'),
  { kind: 'matmul', name: 'matmul 1024x1024x1024', m: 1024, k: 1024, n: 1024 },
];

function outSize(inSize: number, k: number, s: number, padding: 'SAME' | 'VALID'): number {
  return padding === 'SAME' ? Math.ceil(inSize / s) : Math.ceil((inSize - k + 1) / s);
}

function outShape(c: ConvCase): [number, number, number, number] {
  return [c.x[0], outSize(c.x[1], c.w[0], c.stride, c.padding), outSize(c.x[2], c.w[1], c.stride, c.padding), c.w[3]];
}

export function flops(c: Case): number {
  if (c.kind === 'matmul') return 2 * c.m * c.k * c.n;
  const [n, oh, ow, co] = outShape(c);
  return 2 * n * oh * ow * co * c.w[0] * c.w[1] * c.w[2];
}

const data = seededUniform;

// ---- incept's side ------------------------------------------------------------------------

interface Ours {
  dispatches: Dispatch[];
  /** The kernel variant the chooser took (tuned, or the adapter's default). */
  variant: string;
  y: Tensor;
  inputs: Tensor[];
}

function oursFor(rt: Runtime, c: Case, xData: Float32Array, wData: Float32Array): Ours {
  if (c.kind === 'conv') {
    const x = upload(rt, xData, c.x, 'x');
    const w = upload(rt, wData, c.w, 'w');
    const y = empty(rt, outShape(c), 'float32', 'y');
    const attrs: Conv2dAttrs = { strides: [c.stride, c.stride], padding: c.padding };
    const scratch = scratchOf(rt, conv2dScratchBytes(c.x, c.w, attrs, rt));
    const { result, choices } = recordChoices(() => conv2dDispatches(x, w, y, attrs, {}, 0, scratch));
    return { dispatches: result, variant: variantOf(choices), y, inputs: [x, w, ...(scratch ? [scratch] : [])] };
  }
  const a = upload(rt, xData, [c.m, c.k], 'a');
  const b = upload(rt, wData, [c.k, c.n], 'b');
  const y = empty(rt, [c.m, c.n], 'float32', 'y');
  const scratch = scratchOf(rt, matmulScratchBytes(a.shape, b.shape, {}, rt));
  const { result, choices } = recordChoices(() => matmulDispatches(a, b, y, {}, undefined, scratch));
  return { dispatches: result, variant: variantOf(choices), y, inputs: [a, b, ...(scratch ? [scratch] : [])] };
}

/** The split-K scratch a chosen variant needs (as the compiler plans it), or null. */
function scratchOf(rt: Runtime, bytes: number): Tensor | null {
  return bytes > 0 ? empty(rt, [Math.ceil(bytes / 4)], 'float32', 'scratch') : null;
}

/** 'name (source)' of the one choice a case made; '-' when the kernel has no variants. */
function variantOf(choices: { variant: string; source: string }[]): string {
  const c = choices.at(-1);
  return c ? `${c.variant} (${c.source})` : '-';
}

/** GPU memory the case holds while running: every distinct buffer range its dispatches bind. */
function boundBytes(ds: Dispatch[]): number {
  const seen = new Set<string>();
  const ids = new Map<GPUBuffer, number>();
  let bytes = 0;
  for (const d of ds) bytes += d.params.byteLength;
  for (const b of ds.flatMap((d) => d.buffers)) {
    const buf = 'buffer' in b ? b.buffer : b;
    const offset = 'buffer' in b ? (b.offset ?? 0) : 0;
    const size = 'buffer' in b && b.size !== undefined ? b.size : buf.size - offset;
    if (!ids.has(buf)) ids.set(buf, ids.size);
    const key = `${ids.get(buf)}:${offset}:${size}`;
    if (seen.has(key)) continue;
    seen.add(key);
    bytes += size;
  }
  return bytes;
}

function tfOp(tf: TfPeer['tf'], c: Case, xData: Float32Array, wData: Float32Array): { op: () => TfTensor; inputs: TfTensor[] } {
  if (c.kind === 'matmul') {
    const a = tf.tensor2d(xData, [c.m, c.k]);
    const b = tf.tensor2d(wData, [c.k, c.n]);
    return { op: () => tf.matMul(a, b), inputs: [a, b] };
  }
  const x = tf.tensor4d(xData, c.x);
  const w = tf.tensor4d(wData, c.w);
  const pad = c.padding === 'SAME' ? 'same' : 'valid';
  return { op: () => tf.conv2d(x, w, c.stride, pad), inputs: [x, w] };
}

/** Largest |a - b| relative to the largest |b|. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return a.length === b.length ? diff / scale : Infinity;
}

export async function run(argv: string[]): Promise<Report> {
  let filter: string | null = null;
  let runs = 10;
  let wallClock = false;
  let withPeer = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--case') filter = argv[++i] ?? '';
    else if (a === '--runs') runs = Number(argv[++i]);
    else if (a === '--wall') wallClock = true;
    else if (a === '--no-peer') withPeer = false;
    else throw new UsageError(`kernels: unknown option '${a}' (options: --json FILE, --case TEXT, --runs N, --wall, --no-peer)`);
  }
  if (!Number.isInteger(runs) || runs < 3) throw new UsageError('kernels: --runs needs an integer >= 3');
  const cases = CASES.filter((c) => filter === null || c.name.toLowerCase().includes(filter.toLowerCase()));
  if (cases.length === 0) throw new UsageError(`kernels: no case matches '${filter}' (cases: ${CASES.map((c) => c.name).join('; ')})`);

  const rt = await getRuntime();
  const peer = withPeer ? await loadTfjs() : null;
  const opts = { warmup: 2, runs, budgetMs: 15_000, wallClock };
  const oursMethod: TimingMethod = rt.hasTimestamps && !wallClock ? 'gpu-timestamp' : 'wall-clock';
  const peerMethod: TimingMethod | null = peer ? (peer.method === 'gpu-timestamp' && !wallClock ? 'gpu-timestamp' : 'wall-clock') : null;

  const results: CaseResult[] = [];
  for (const [i, c] of cases.entries()) {
    const xData = data(c.kind === 'conv' ? c.x.reduce((p, v) => p * v) : c.m * c.k, 1 + 2 * i);
    const wData = data(c.kind === 'conv' ? c.w.reduce((p, v) => p * v) : c.k * c.n, 2 + 2 * i);
    process.stderr.write(`  ${c.name} ...`);

    const ours = oursFor(rt, c, xData, wData);
    const m = await measure(rt, ours.dispatches, c.name, opts);
    const peak = boundBytes(ours.dispatches);
    const ourY = await ours.y.read();
    ours.y.dispose();
    for (const t of ours.inputs) t.dispose();
    process.stderr.write(` incept ${m.ms.toFixed(3)} ms [${ours.variant}]${m.repeat > 1 ? ` (x${m.repeat} per pass)` : ''}`);

    let peerMs: number | null = null;
    if (peer) {
      const { op, inputs } = tfOp(peer.tf, c, xData, wData);
      // On the wall clock, submit as many runs together as incept's pass holds, so both amortise
      // the submit latency alike; GPU timestamps need no such matching.
      peerMs = await peer.time(op, { ...opts, repeat: peerMethod === 'wall-clock' ? m.repeat : 1 });
      const y = op();
      const diff = relDiff(ourY, (await y.data()) as Float32Array);
      y.dispose();
      if (!(diff < 1e-3)) process.stderr.write(`\nincept bench: warning: ${c.name}: incept and tfjs outputs differ (max rel. diff ${diff.toExponential(2)})`);
      for (const t of inputs) t.dispose();
      process.stderr.write(`, tfjs ${peerMs.toFixed(3)} ms`);
    }
    process.stderr.write('\n');
    results.push({ ...result(c.name, flops(c), m.ms, peer ? { name: peer.name, ms: peerMs } : null, peak), variant: ours.variant });
  }

  const timing = [
    `incept: ${oursMethod}`,
    peer ? `${peer.name}: ${peerMethod}` : null,
    `median of up to ${runs} runs after 2 warm-up runs`,
  ]
    .filter(Boolean)
    .join('; ');
  return { suite: 'kernels', adapter: rt.adapterName, timing, cases: results };
}
