// Whole-network suite: Inception v3 forward at 299x299 (random weights, fixed seed), batch 1 and 8,
// in incept and in TensorFlow.js's WebGPU backend running the same graph with the same parameter
// data (bench/tfjs_graph.ts) on the same Dawn adapter.
//
//   npm run bench -- network [--json FILE] [--batches 1,8] [--runs N] [--warmup N] [--size N]
//                            [--no-peer] [--peer-unfused]
//
// A forward is timed on the wall clock, the same way on both sides: input upload, the GPU work,
// its completion and the readback of Logits and Predictions (what classifying an image costs).
// ms is the median of --runs runs (default 3 at batch 1, one fewer, at least 2, at larger
// batches) after --warmup runs (default 1). The first run is reported apart, as its own case:
//   incept: graph build + compile (parameter upload, BN folding, pipelines, memory planning) + first forward;
//   tfjs:   tensor set-up (parameter upload, BN folding) + first forward (its shaders compile lazily).
// At batch > 1 the first run reuses what batch 1 already compiled (pipelines, parameters), on both sides.
// Random initialisation of the weights stands in for loading a checkpoint and is not counted.
// The aux head is left out (it does not feed Predictions; a frozen inference graph prunes it).
import { Model } from '../src/graph/model.ts';
import type { Graph } from '../src/graph/ir.ts';
import { getRuntime } from '../src/gpu/runtime.ts';
import { median } from '../src/gpu/timing.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';
import { type TfPeer, type TfTensor, loadTfjs } from './tfjs.ts';
import { TfjsGraph } from './tfjs_graph.ts';

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

/** Deterministic inputs in [-1, 1), like preprocessed images. */
function inputData(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

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
  peer: boolean;
  fold: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = { batches: [1, 8], runs: 3, warmup: 1, size: 299, peer: true, fold: true };
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
    else if (a === '--no-peer') o.peer = false;
    else if (a === '--peer-unfused') o.fold = false;
    else {
      throw new UsageError(
        `bench network: unknown option '${a}' (options: --json FILE, --batches 1,8, --runs N, --warmup N, --size N, --no-peer, --peer-unfused)`,
      );
    }
  }
  return o;
}

const say = (msg: string) => process.stderr.write(`${msg}\n`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

type Outputs = Record<string, Float32Array>;

/** One tfjs forward: upload, run, read back every output. */
async function tfjsForward(tf: TfPeer['tf'], g: TfjsGraph, input: Float32Array, shape: number[]): Promise<{ ms: number; out: Outputs }> {
  const t0 = performance.now();
  const x = tf.tensor(input, shape);
  const outs = g.run(x);
  const out: Outputs = {};
  try {
    for (const [k, v] of Object.entries(outs)) out[k] = (await v.data()) as Float32Array;
  } finally {
    x.dispose();
    for (const v of Object.values(outs) as TfTensor[]) v.dispose();
  }
  return { ms: performance.now() - t0, out };
}

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const rt = await getRuntime();
  const peer = o.peer ? await loadTfjs() : null;
  const peerName = peer ? `${peer.name}${o.fold ? '' : ' (unfused)'}` : null;
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

  let tg: TfjsGraph | null = null;
  let tgSetupMs = 0;
  const results: (CaseResult & Record<string, unknown>)[] = [];
  try {
    for (const batch of o.batches) {
      const label = `${base} batch ${batch}`;
      const runs = batch === 1 ? o.runs : Math.max(2, o.runs - 1);
      const input = inputData(batch * per, 100 + batch);
      const shape = [batch, o.size, o.size, 3];

      // ---- incept ----
      say(`${label}: incept first run ...`);
      t = performance.now();
      const plan = model.plan(batch);
      const compileMs = performance.now() - t;
      t = performance.now();
      const first = await plan.runToHost(input);
      const firstMs = performance.now() - t;
      const firstTotal = (batch === o.batches[0] ? buildMs : 0) + compileMs + firstMs;
      say(
        `  incept first run ${fmt(firstTotal)}: ${batch === o.batches[0] ? `build ${fmt(buildMs)} + ` : ''}` +
          `compile ${fmt(compileMs)}${batch === o.batches[0] ? '' : ' (graph at this batch included)'} + first forward ${fmt(firstMs)}; ` +
          `${plan.dispatchCount} dispatches, planned peak ${mib(plan.peakBytes)} + parameters ${mib(weightsBytes)}`,
      );
      let ours: Outputs = first;
      for (let i = 0; i < o.warmup; i++) ours = await plan.runToHost(input);
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        t = performance.now();
        ours = await plan.runToHost(input);
        samples.push(performance.now() - t);
      }
      const ms = median(samples);
      say(`  incept ${samples.map(fmt).join(', ')} -> median ${fmt(ms)}, ${((1000 * batch) / ms).toFixed(2)} images/s`);

      // ---- tfjs ----
      let peerMs: number | null = null;
      let peerFirst: number | null = null;
      const peerSamples: number[] = [];
      let check: Record<string, number> = {};
      if (peer) {
        say(`${label}: ${peerName} first run ...`);
        let setupMs = 0;
        if (!tg) {
          t = performance.now();
          tg = new TfjsGraph(peer.tf, model.graph, { fold: o.fold });
          setupMs = tgSetupMs = performance.now() - t;
        }
        const f = await tfjsForward(peer.tf, tg, input, shape);
        peerFirst = setupMs + f.ms;
        say(`  tfjs first run ${fmt(peerFirst)}: ${setupMs ? `set-up ${fmt(setupMs)} + ` : ''}first forward ${fmt(f.ms)}`);
        let theirs = f.out;
        for (let i = 0; i < o.warmup; i++) theirs = (await tfjsForward(peer.tf, tg, input, shape)).out;
        // The same graph, weights and input: the outputs must agree before the timings mean anything.
        const logits = model.graph.endPoint('Logits');
        const predictions = model.graph.endPoint('Predictions');
        const logitsRel = maxAbsDiff(ours[logits], theirs[logits]) / Math.max(1e-12, maxAbs(ours[logits]));
        say(
          `  incept vs tfjs: Predictions max |diff| ${maxAbsDiff(ours[predictions], theirs[predictions]).toExponential(2)}, ` +
            `Logits max |diff| ${maxAbsDiff(ours[logits], theirs[logits]).toExponential(2)} (${logitsRel.toExponential(2)} of max |logit| ${maxAbs(ours[logits]).toFixed(2)})`,
        );
        if (!(logitsRel < 1e-3)) say(`incept bench: warning: ${label}: incept and tfjs outputs differ (Logits relative difference ${logitsRel.toExponential(2)})`);
        check = {
          predictions_max_abs_diff: maxAbsDiff(ours[predictions], theirs[predictions]),
          logits_max_abs_diff: maxAbsDiff(ours[logits], theirs[logits]),
        };
        for (let i = 0; i < runs; i++) peerSamples.push((await tfjsForward(peer.tf, tg, input, shape)).ms);
        peerMs = median(peerSamples);
        say(`  tfjs ${peerSamples.map(fmt).join(', ')} -> median ${fmt(peerMs)}, ${((1000 * batch) / peerMs).toFixed(2)} images/s`);
        const mem = peer.tf.memory() as { numBytesAllocatedInGPU?: number };
        if (mem.numBytesAllocatedInGPU) say(`  tfjs holds ${mib(mem.numBytesAllocatedInGPU)} of GPU buffers (its pool included)`);
        say(`  speed-up (tfjs ms / incept ms): ${(peerMs / ms).toFixed(2)}x`);
      }

      const peerRef = peerName ? { name: peerName, ms: peerMs } : null;
      results.push({
        ...result(label, flopsPerImage * batch, ms, peerRef, plan.peakBytes),
        batch,
        runs,
        samples_ms: samples,
        images_per_s: (1000 * batch) / ms,
        peer_samples_ms: peer ? peerSamples : null,
        peer_images_per_s: peerMs ? (1000 * batch) / peerMs : null,
        weights_bytes: weightsBytes,
        ...check,
      });
      results.push({
        ...result(`${label} first run`, null, firstTotal, peerName ? { name: peerName, ms: peerFirst } : null, plan.peakBytes),
        batch,
        build_ms: batch === o.batches[0] ? buildMs : 0,
        compile_ms: compileMs,
        first_forward_ms: firstMs,
        peer_setup_ms: peer && batch === o.batches[0] ? tgSetupMs : peer ? 0 : null,
        weights_bytes: weightsBytes,
      });
    }
  } finally {
    tg?.dispose();
    model.dispose();
  }

  const timing = [
    'wall clock per forward, both sides: input upload + GPU work to completion + readback of Logits and Predictions',
    `median of ${o.runs} runs at batch 1 (${Math.max(2, o.runs - 1)} at larger batches) after ${o.warmup} warm-up`,
    'first run (build + compile + first forward) reported apart',
    `random weights, seed ${SEED}, no aux head; peak = planned activations (parameters ${mib(weightsBytes)} on top)`,
    peer ? `peer: ${o.fold ? 'BN folded into tf.fused.conv2d (+ReLU), as tfjs-converter does' : 'one tfjs op per graph node'}` : null,
  ]
    .filter(Boolean)
    .join('; ');
  return { suite: 'network', adapter: rt.adapterName, timing, cases: results };
}
