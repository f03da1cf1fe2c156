// Whole-network suite: Inception v3 forward at 299x299 (random weights, fixed seed), batch 1 and 8,
// in incept and, in the same run, in other engines running the SAME graph with the same parameter
// data, input and batch (bench/network_peers.ts): TensorFlow.js's WebGPU backend on the same Dawn
// adapter, ONNX Runtime's native CPU (onnxruntime-node) and WebAssembly (onnxruntime-web) builds on
// the graph exported as ONNX, and PyTorch on the CPU where a python3 with torch is at hand.
//
//   npm run bench -- network [--json FILE] [--batches 1,8] [--runs N] [--warmup N] [--size N]
//                            [--peers tfjs,ort-node,ort-web,torch] [--no-peer] [--peer-unfused]
//
// A forward is timed on the wall clock, the same way for every engine: input upload (or tensor
// creation), the work to completion and the readback of Logits and Predictions (what classifying a
// batch costs). ms is the median of --runs runs (default 3 at batch 1, one fewer, at least 2, at
// larger batches) after --warmup runs (default 1); the minimum is reported too. The first run is
// reported apart: incept: graph build + compile (parameter upload, BN folding, pipelines, memory
// planning) + first forward; tfjs: tensor set-up + first forward (its shaders compile lazily); ONNX
// Runtime: session creation (graph optimisation) + first forward; PyTorch: parameter load and BN
// folding + first forward. Set-up happens once, at the first batch, except PyTorch's (one process
// per batch). Random initialisation of the weights, the ONNX export and layout conversions of the
// input are not counted. The aux head is left out (a frozen inference graph prunes it).
import { Model } from '../src/graph/model.ts';
import type { Graph } from '../src/graph/ir.ts';
import { getRuntime } from '../src/gpu/runtime.ts';
import { median } from '../src/gpu/timing.ts';
import { type NetworkPeer, type Outputs, PEER_KINDS, type PeerKind, type UnavailablePeer, loadPeers } from './network_peers.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';
import { seededUniform } from '../src/kernels/seeded.ts';

const SEED = 1;

/** Floating-point operations of one forward (2 x multiply-adds of convs and matmuls; the rest is small). */
export function graphFlops(g: Graph): number {
  let flops = 0;
  for (const n of g.nodes) {
    if (n.op === 'conv2d') {
      const [kh, kw, ciPerGroup] = g.shapeOf(n.inputs[1]);
      flops += 2 * n.shape.reduce((a, b) => a * b, 1) * kh * kw * ciPerGroup;
    } else if (n.op === 'matmul') {
      const a = g.shapeOf(n.inputs[0]);
      const k = n.attrs.transA ? a[a.length - 2] : a[a.length - 1];
      flops += 2 * n.shape.reduce((x, y) => x * y, 1) * k;
    }
  }
  return flops;
}

const inputData = seededUniform;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}


interface Options {
  batches: number[];
  runs: number;
  warmup: number;
  size: number;
  peers: PeerKind[];
  fold: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = { batches: [1, 8], runs: 3, warmup: 1, size: 299, peers: [...PEER_KINDS], fold: true };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`bench network: ${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--batches') {
      o.batches = (argv[++i] ?? '').split(',').map((b) => int('--batches', b, 1));
    } else if (a === '--runs') o.runs = int(a, argv[++i], 1);
    else if (a === '--warmup') o.warmup = int(a, argv[++i], 0);
    else if (a === '--size') o.size = int(a, argv[++i], 75);
    else if (a === '--peers') o.peers = parsePeers(argv[++i]);
    else if (a === '--no-peer') o.peers = [];
    else if (a === '--peer-unfused') o.fold = false;
    else {
      throw new UsageError(
        `bench network: unknown option '${a}' (options: --json FILE, --batches 1,8, --runs N, --warmup N, --size N, --peers ${PEER_KINDS.join(',')}, --no-peer, --peer-unfused)`,
      );
    }
  }
  return o;
}

function parsePeers(v: string | undefined): PeerKind[] {
  const kinds = (v ?? '').split(',').filter(Boolean);
  for (const k of kinds) {
    if (!(PEER_KINDS as readonly string[]).includes(k)) throw new UsageError(`bench network: --peers: unknown peer '${k}' (peers: ${PEER_KINDS.join(', ')})`);
  }
  if (!kinds.length) throw new UsageError(`bench network: --peers needs a list of ${PEER_KINDS.join(',')}`);
  return kinds as PeerKind[];
}

const say = (msg: string) => process.stderr.write(`${msg}\n`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

/** One line of the engines table (and of the JSON's figures.engines). */
export interface EngineRow {
  engine: string;
  batch: number | null;
  /** 'ok', or why there are no figures ('not available: ...', 'failed: ...'). */
  status: string;
  ms: number | null;
  min_ms: number | null;
  images_per_s: number | null;
  gflops: number | null;
  first_ms: number | null;
  setup_ms: number | null;
  samples_ms: number[];
  /** max |logits - incept's logits| / max |incept's logits| (null for incept itself). */
  logits_rel_diff: number | null;
}

function engineRow(engine: string, batch: number, flops: number, samples: number[], firstMs: number, setupMs: number, diff: number | null): EngineRow {
  const ms = median(samples);
  return {
    engine,
    batch,
    status: 'ok',
    ms,
    min_ms: Math.min(...samples),
    images_per_s: (1000 * batch) / ms,
    gflops: flops / (ms * 1e6),
    first_ms: firstMs,
    setup_ms: setupMs,
    samples_ms: samples,
    logits_rel_diff: diff,
  };
}

function missingRow(engine: string, batch: number | null, status: string): EngineRow {
  const none = { ms: null, min_ms: null, images_per_s: null, gflops: null, first_ms: null, setup_ms: null, logits_rel_diff: null };
  return { engine, batch, status, samples_ms: [], ...none };
}

/** The engines table: one row per engine and batch; an engine without figures says why. */
export function formatEngines(rows: EngineRow[]): string {
  const n = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));
  const header = ['engine', 'batch', 'ms median', 'ms min', 'images/s', 'GFLOP/s', 'first run ms', 'logits vs incept'];
  const cells = (r: EngineRow) => [
    r.engine,
    r.batch === null ? '-' : String(r.batch),
    ...(r.status === 'ok'
      ? [n(r.ms, 1), n(r.min_ms, 1), n(r.images_per_s, 2), n(r.gflops, 1), n(r.first_ms, 0), r.logits_rel_diff === null ? '-' : r.logits_rel_diff.toExponential(1)]
      : [r.status]),
  ];
  const body = rows.map(cells);
  const widths = header.map((h, i) => Math.max(h.length, ...body.filter((c) => c.length === header.length || i < 2).map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : i < header.length && c.length === header.length ? v.padStart(widths[i]) : i === 1 ? v.padStart(widths[i]) : v)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** Relative difference of the peer's Logits from incept's. */
function logitsDiff(ours: Outputs, theirs: Outputs, logits: string): number {
  if (!theirs[logits]) return Infinity;
  return maxAbsDiff(ours[logits], theirs[logits]) / Math.max(1e-12, maxAbs(ours[logits]));
}

interface InceptBatch {
  samples: number[];
  firstTotal: number;
  compileMs: number;
  firstMs: number;
  peakBytes: number;
  out: Outputs;
}

/** incept's side of one batch: compile, first forward, warm-up, timed runs. */
async function measureIncept(model: Model, batch: number, input: Float32Array, runs: number, warmup: number, buildMs: number): Promise<InceptBatch> {
  let t = performance.now();
  const plan = model.plan(batch);
  const compileMs = performance.now() - t;
  t = performance.now();
  let out: Outputs = await plan.runToHost(input);
  const firstMs = performance.now() - t;
  const firstTotal = buildMs + compileMs + firstMs;
  say(
    `  incept first run ${fmt(firstTotal)}: ${buildMs ? `build ${fmt(buildMs)} + ` : ''}compile ${fmt(compileMs)}${buildMs ? '' : ' (graph at this batch included)'} + ` +
      `first forward ${fmt(firstMs)}; ${plan.dispatchCount} dispatches, planned peak ${mib(plan.peakBytes)}`,
  );
  for (let i = 0; i < warmup; i++) out = await plan.runToHost(input);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    out = await plan.runToHost(input);
    samples.push(performance.now() - t);
  }
  return { samples, firstTotal, compileMs, firstMs, peakBytes: plan.peakBytes, out };
}

/** One peer on one batch: a row, and a warning when its outputs do not match incept's. */
async function measurePeer(peer: NetworkPeer, batch: number, input: Float32Array, shape: number[], runs: number, warmup: number, ours: Outputs, logits: string, flops: number): Promise<EngineRow> {
  say(`  ${peer.name} ...`);
  try {
    const p = await peer.measure(input, shape, runs, warmup);
    // The same graph, weights and input: the outputs must agree before the timings mean anything.
    const diff = logitsDiff(ours, p.out, logits);
    say(`  ${peer.name}: ${p.samples.map(fmt).join(', ')}; first run ${fmt(p.firstMs)} (set-up ${fmt(p.setupMs)}); Logits vs incept ${diff.toExponential(2)} of max |logit|`);
    if (!(diff < 1e-3)) say(`incept bench: warning: batch ${batch}: ${peer.name} and incept outputs differ (Logits relative difference ${diff.toExponential(2)})`);
    return engineRow(peer.name, batch, flops, p.samples, p.firstMs, p.setupMs, diff);
  } catch (e) {
    say(`incept bench: warning: batch ${batch}: ${peer.name} failed: ${(e as Error).message}`);
    return missingRow(peer.name, batch, `failed: ${(e as Error).message}`);
  }
}

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const rt = await getRuntime();
  const base = `inception_v3 ${o.size}`;

  // incept: graph build at batch 1, then the random weights (not counted: a checkpoint load's stand-in).
  let t = performance.now();
  const model = await Model.inceptionV3({ inputSize: o.size, auxLogits: false, seed: SEED }, rt);
  const buildMs = performance.now() - t;
  t = performance.now();
  for (const p of model.graph.params.values()) void p.data;
  say(`incept: graph built in ${fmt(buildMs)}; random weights (seed ${SEED}) made in ${fmt(performance.now() - t)} (not counted)`);
  const weightsBytes = model.graph.paramCount('all') * 4;
  const flopsPerImage = graphFlops(model.graph);
  const per = o.size * o.size * 3;
  const logits = model.graph.endPoint('Logits');

  const { peers, unavailable } = o.peers.length ? await loadPeers(o.peers, model.graph, { fold: o.fold }) : { peers: [], unavailable: [] as UnavailablePeer[] };
  for (const u of unavailable) say(`incept bench: ${u.kind}: not available: ${u.reason}`);
  const rows: EngineRow[] = [];
  const cases: (CaseResult & Record<string, unknown>)[] = [];
  try {
    for (const batch of o.batches) {
      const label = `${base} batch ${batch}`;
      const runs = batch === 1 ? o.runs : Math.max(2, o.runs - 1);
      const input = inputData(batch * per, 100 + batch);
      const shape = [batch, o.size, o.size, 3];
      const flops = flopsPerImage * batch;

      say(`${label}: incept ...`);
      const ours = await measureIncept(model, batch, input, runs, o.warmup, batch === o.batches[0] ? buildMs : 0);
      const inceptRow = engineRow('incept (WebGPU)', batch, flops, ours.samples, ours.firstTotal, ours.firstTotal - ours.firstMs, null);
      say(`  incept ${ours.samples.map(fmt).join(', ')} -> median ${fmt(inceptRow.ms!)}, ${inceptRow.images_per_s!.toFixed(2)} images/s`);
      rows.push(inceptRow);
      const peerRows: EngineRow[] = [];
      for (const peer of peers) peerRows.push(await measurePeer(peer, batch, input, shape, runs, o.warmup, ours.out, logits, flops));
      rows.push(...peerRows);

      const common = { batch, runs, samples_ms: ours.samples, images_per_s: inceptRow.images_per_s, weights_bytes: weightsBytes };
      if (!peerRows.length) cases.push({ ...result(label, flops, inceptRow.ms, null, ours.peakBytes), ...common });
      for (const r of peerRows) {
        cases.push({
          ...result(`${label} vs ${r.engine}`, flops, inceptRow.ms, { name: r.engine, ms: r.ms }, ours.peakBytes),
          ...common,
          peer_samples_ms: r.samples_ms,
          peer_images_per_s: r.images_per_s,
          logits_rel_diff: r.logits_rel_diff,
        });
      }
      cases.push({
        ...result(`${label} first run`, null, ours.firstTotal, null, ours.peakBytes),
        batch,
        build_ms: batch === o.batches[0] ? buildMs : 0,
        compile_ms: ours.compileMs,
        first_forward_ms: ours.firstMs,
        weights_bytes: weightsBytes,
      });
    }
  } finally {
    for (const p of peers) await p.dispose();
    model.dispose();
  }
  for (const u of unavailable) rows.push(missingRow(u.kind === 'torch' ? 'pytorch-cpu' : u.kind, null, `not available: ${u.reason}`));

  // The shared table has one peer column; the engines table goes first, on stdout too.
  console.log(`${formatEngines(rows)}\n`);
  const timing = [
    'wall clock per forward, every engine: input upload or tensor creation + work to completion + readback of Logits and Predictions',
    `median (and min) of ${o.runs} runs at batch 1 (${Math.max(2, o.runs - 1)} at larger batches) after ${o.warmup} warm-up`,
    'first run (set-up + first forward) reported apart',
    `random weights, seed ${SEED}, no aux head; peak = incept's planned activations (parameters ${mib(weightsBytes)} on top)`,
    peers.some((p) => p.name.startsWith('tfjs')) ? `tfjs: ${o.fold ? 'BN folded into tf.fused.conv2d (+ReLU), as tfjs-converter does' : 'one tfjs op per graph node'}` : null,
    peers.some((p) => p.name.startsWith('onnxruntime')) ? 'ONNX Runtime: the graph exported by incept (src/export, NCHW input, dynamic batch), graph optimisation level all' : null,
    peers.some((p) => p.name.startsWith('pytorch')) ? 'PyTorch: bench/torch_graph.py, torch.nn.functional on NCHW tensors, BN folded into the convs, inference_mode' : null,
  ]
    .filter(Boolean)
    .join('; ');
  return { suite: 'network', adapter: rt.adapterName, timing, cases, figures: { engines: rows } };
}
