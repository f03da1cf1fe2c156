// Training suite: one Inception v3 training step at 299x299 (forward with training batchnorm,
// softmax cross-entropy, backward, TF1 RMSProp update), 1001 classes, no aux head, random weights
// (fixed seed), in incept's Trainer and, for case (a), in TensorFlow.js's WebGPU backend doing
// the same step on the same adapter (bench/tfjs_train.ts).
//
//   npm run bench -- train [--json FILE] [--batch 8] [--steps 3] [--big-batch 32] [--big-steps 1]
//                          [--no-peer] [--cases a,b] [--size 299] [--depth-multiplier 1] [--vs-forward]
//
// Cases:
//   (a) every layer trains (batchnorm in training mode everywhere);
//   (b) fine-tuning: only Mixed_7* and Logits train; the frozen batchnorms below use their moving
//       statistics (the Trainer folds them into the convs) and no backward runs below Mixed_7a.
// A step is timed on the wall clock, the same way on both sides: upload of images and labels,
// the GPU work to completion, and the readback of the loss (incept also reads the logits).
// The first step (Trainer build = graph + planning + pipelines, then the step) is the warm-up and
// is reported apart; ms is the median of --steps steps after it. tfjs: ONE timed step after its
// warm-up step (each takes minutes here). Both sides start from the same weights, inputs, labels
// and dropout mask, so their first losses (before any update) must agree: checked within 1e-3.
// Later losses drift apart a little (float32 summation orders differ, and the backward of the 94
// training batchnorms amplifies that), so only the first is checked.
// --vs-forward: the timed steps alternate with forward passes at the same batch (Model.plan, the
// network bench's formulation) in the same process, so that the step / forward ratio (issue 10's
// "case (b) at most 1.5x a forward pass") is taken in one load window on a shared machine: each
// ratio is a step over the forward just before it; the median of those is reported.
// Case (a) at --big-batch (32) is planned (micro-batches, peak memory) and run --big-steps times
// right after its build (no warm-up; 0 plans only).
// Each case starts again from the initial weights.
import { differentiate } from '../src/graph/autodiff.ts';
import type { Graph } from '../src/graph/ir.ts';
import { Model } from '../src/graph/model.ts';
import { getRuntime } from '../src/gpu/runtime.ts';
import { median } from '../src/gpu/timing.ts';
import { dropoutMaskRef } from '../src/kernels/dropout.ts';
import { Trainer } from '../src/train/trainer.ts';
import type { OptimizerConfig } from '../src/train/optimizers.ts';
import { graphFlops } from './network.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';
import { loadTfjs } from './tfjs.ts';
import { TfjsTrainer, registerTfjsGradients } from './tfjs_train.ts';
import { seededUniform } from '../src/kernels/seeded.ts';

const SEED = 1;
const CLASSES = 1001;
const LR = 0.01;
const OPTIMIZER: OptimizerConfig = { kind: 'rmsprop', decay: 0.9, momentum: 0.9, epsilon: 1.0 };
/** incept's training-step seed (TrainingConfig.seed default): dropout masks derive from it. */
const DROPOUT_SEED = 0;
const LOSS_TOLERANCE = 1e-3;

interface Options {
  batch: number;
  steps: number;
  bigBatch: number;
  bigSteps: number;
  peer: boolean;
  cases: ('a' | 'b')[];
  size: number;
  depthMultiplier: number;
  vsForward: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = { batch: 8, steps: 3, bigBatch: 32, bigSteps: 1, peer: true, cases: ['a', 'b'], size: 299, depthMultiplier: 1, vsForward: false };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`bench train: ${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--batch') o.batch = int(a, argv[++i], 1);
    else if (a === '--steps') o.steps = int(a, argv[++i], 1);
    else if (a === '--big-batch') o.bigBatch = int(a, argv[++i], 0);
    else if (a === '--big-steps') o.bigSteps = int(a, argv[++i], 0);
    else if (a === '--no-peer') o.peer = false;
    else if (a === '--vs-forward') o.vsForward = true;
    else if (a === '--size') o.size = int(a, argv[++i], 75);
    else if (a === '--depth-multiplier') {
      o.depthMultiplier = Number(argv[++i]);
      if (!(o.depthMultiplier > 0 && o.depthMultiplier <= 1)) throw new UsageError('bench train: --depth-multiplier needs a number in (0, 1]');
    } else if (a === '--cases') {
      const c = (argv[++i] ?? '').split(',');
      if (!c.length || c.some((x) => x !== 'a' && x !== 'b')) throw new UsageError("bench train: --cases takes 'a', 'b' or 'a,b'");
      o.cases = c as ('a' | 'b')[];
    } else {
      throw new UsageError(
        `bench train: unknown option '${a}' (options: --json FILE, --batch N, --steps N, --big-batch N, --big-steps N, --no-peer, --cases a,b, --size N, --depth-multiplier X, --vs-forward)`,
      );
    }
  }
  return o;
}

const say = (msg: string) => process.stderr.write(`${msg}\n`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

const inputData = seededUniform;

function labelData(n: number, classes: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % classes;
  });
}

/** Which parameters train in each case (moving statistics never do). */
function trainableFor(graph: Graph, c: 'a' | 'b'): (p: string) => boolean {
  if (c === 'a') return (p) => graph.param(p).trainable;
  return (p) => graph.param(p).trainable && (p.includes('Mixed_7') || p.includes('Logits'));
}

const CASE_LABEL = { a: 'all layers', b: 'Mixed_7+Logits' } as const;

/**
 * FLOPs of one training step (2 x multiply-adds of convs and matmuls): the forward, plus per conv
 * the filter gradient where its weights train and the input gradient where its input needs one.
 */
function trainFlops(graph: Graph, trainable: (p: string) => boolean): number {
  const logits = graph.endPoint('Logits');
  const diff = differentiate(graph, logits, trainable, false);
  let flops = 0;
  for (const n of graph.nodes) {
    if (!diff.live.has(n.name) || n.op !== 'conv2d') continue;
    const [kh, kw, ciPerGroup] = graph.shapeOf(n.inputs[1]);
    const f = 2 * n.shape.reduce((a, b) => a * b, 1) * kh * kw * ciPerGroup;
    flops += f;
    if (diff.needsGrad.has(n.inputs[1])) flops += f;
    if (diff.needsGrad.has(n.inputs[0])) flops += f;
  }
  for (const n of graph.nodes) if (n.op === 'matmul' && diff.live.has(n.name)) throw new Error('bench train: matmul FLOPs are not counted');
  return flops;
}

/** Bytes of the persistent state a Trainer adds to the parameters: parameter gradients and optimizer slots. */
function stateBytes(trainer: Trainer): { grads: number; optimizer: number; trained: number } {
  let grads = 0;
  for (const g of trainer.training.paramGrads.values()) grads += g.bytes;
  let optimizer = trainer.optimizer.hyper.bytes;
  for (const s of trainer.optimizer.slots.values()) optimizer += s.bytes;
  let trained = 0;
  for (const name of trainer.training.trainedParams) trained += trainer.model.graph.param(name).size;
  return { grads, optimizer, trained };
}

/** incept's dropout multipliers for a step, as the Trainer's dropout kernels draw them (per micro-batch). */
function dropoutMultipliers(trainer: Trainer): Map<string, { stream: number; keep: number; perImage: number }> {
  const out = new Map<string, { stream: number; keep: number; perImage: number }>();
  for (const n of trainer.training.groups.flatMap((g) => g.nodes)) {
    if (n.op !== 'dropout') continue;
    const stream = trainer.training.builder.steps.findIndex((s) => s.name === `${n.name} (training forward)`);
    if (stream < 0) throw new Error(`bench train: no training step for ${n.name}`);
    out.set(n.name, { stream, keep: n.attrs.keepProb, perImage: n.shape.slice(1).reduce((a, b) => a * b, 1) });
  }
  return out;
}

function maskFor(d: { stream: number; keep: number; perImage: number }, step: number, batch: number, microBatch: number): Float32Array {
  const mb = dropoutMaskRef(microBatch * d.perImage, DROPOUT_SEED, step, d.keep, d.stream);
  const scale = Math.fround(1 / d.keep);
  // Every micro-batch replays the same program at the same step, so the mask repeats per micro-batch.
  return Float32Array.from({ length: batch * d.perImage }, (_, i) => (mb[i % mb.length] ? scale : 0));
}

/** Timed steps after the warm-up: wall clock of each, and the losses. */
async function timeSteps(trainer: Trainer, images: Float32Array, labels: Int32Array, steps: number, label: string): Promise<{ samples: number[]; losses: number[] }> {
  const samples: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    const r = await trainer.trainStep(images, labels);
    samples.push(performance.now() - t);
    losses.push(r.loss);
    if (!Number.isFinite(r.loss)) throw new Error(`bench train: ${label}: loss is ${r.loss} at step ${trainer.step - 1}`);
  }
  return { samples, losses };
}

/**
 * Timed steps, each right after a timed forward pass at the same batch (wall clock, the network
 * bench's formulation: upload, GPU work, readback of the outputs). The forward's plan is built and
 * run once before (not counted).
 */
async function timeStepsVsForward(
  model: Model,
  trainer: Trainer,
  images: Float32Array,
  labels: Int32Array,
  steps: number,
  label: string,
): Promise<{ samples: number[]; losses: number[]; forward: number[]; ratios: number[] }> {
  const plan = model.plan(trainer.opts.batch);
  await plan.runToHost(images);
  const forward: number[] = [];
  const samples: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    let t = performance.now();
    await plan.runToHost(images);
    forward.push(performance.now() - t);
    t = performance.now();
    const r = await trainer.trainStep(images, labels);
    samples.push(performance.now() - t);
    losses.push(r.loss);
    if (!Number.isFinite(r.loss)) throw new Error(`bench train: ${label}: loss is ${r.loss} at step ${trainer.step - 1}`);
    say(`  forward ${fmt(forward[i])}, step ${fmt(samples[i])}: ${(samples[i] / forward[i]).toFixed(2)}x`);
  }
  return { samples, losses, forward, ratios: samples.map((s, i) => s / forward[i]) };
}

function describe(trainer: Trainer, paramBytes: number): string {
  const s = stateBytes(trainer);
  return (
    `${trainer.microBatches} x ${trainer.microBatch} images, ${trainer.dispatchCount} dispatches, ` +
    `${trainer.training.trainedParams.length} trained tensors (${(s.trained / 1e6).toFixed(2)} M values); ` +
    `planned peak ${mib(trainer.peakBytes)} + parameters ${mib(paramBytes)} + parameter gradients ${mib(s.grads)} + RMSProp state ${mib(s.optimizer)}`
  );
}

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const rt = await getRuntime();
  const base = `inception_v3 ${o.size} train`;

  let t = performance.now();
  const model = await Model.inceptionV3(
    { inputSize: o.size, numClasses: CLASSES, auxLogits: false, seed: SEED, depthMultiplier: o.depthMultiplier },
    rt,
  );
  for (const p of model.graph.params.values()) void p.data;
  say(`incept: graph and random weights (seed ${SEED}) made in ${fmt(performance.now() - t)} (not counted)`);
  const paramBytes = model.graph.paramCount('all') * 4;
  const per = model.inputShape.reduce((a, b) => a * b, 1);
  const images = inputData(o.batch * per, 100 + o.batch);
  const labels = labelData(o.batch, CLASSES, 7);
  const cases: (CaseResult & Record<string, unknown>)[] = [];
  const summary: string[][] = [];
  const newTrainer = (batch: number, c: 'a' | 'b') =>
    new Trainer(model, { batch, optimizer: OPTIMIZER, learningRate: LR, training: { trainable: trainableFor(model.graph, c) } });

  try {
    for (const c of o.cases) {
      const label = `${base} batch ${o.batch} (${c}) ${CASE_LABEL[c]}`;
      model.parametersChanged(); // start from the initial weights
      say(`${label}: incept first step ...`);
      t = performance.now();
      const trainer = newTrainer(o.batch, c);
      const buildMs = performance.now() - t;
      say(`  ${describe(trainer, paramBytes)}`);
      const flops = trainFlops(model.graph, trainableFor(model.graph, c)) * o.batch;
      const st = stateBytes(trainer);
      let peer: Awaited<ReturnType<typeof runPeer>> | null = null;
      let firstStepMs: number;
      let initialLoss: number;
      let timed: { samples: number[]; losses: number[]; forward?: number[]; ratios?: number[] };
      try {
        // The first step is the warm-up; on case (a) the peer's warm-up follows it so that the
        // initial losses are compared before anything is timed.
        t = performance.now();
        const first = await trainer.trainStep(images, labels);
        firstStepMs = performance.now() - t;
        initialLoss = first.loss;
        say(`  incept first step ${fmt(buildMs + firstStepMs)}: build ${fmt(buildMs)} + step ${fmt(firstStepMs)}; initial loss ${first.loss.toFixed(6)}`);
        if (c === 'a' && o.peer) {
          peer = await runPeer(model.graph, trainer, images, labels, first.loss);
        }
        say(`  incept: ${o.steps} timed steps ...`);
        timed = o.vsForward
          ? await timeStepsVsForward(model, trainer, images, labels, o.steps, label)
          : await timeSteps(trainer, images, labels, o.steps, label);
      } finally {
        trainer.dispose();
      }
      const m = { buildMs, firstStepMs, initialLoss, samples: timed.samples, losses: [initialLoss, ...timed.losses] };
      const ms = median(m.samples);
      say(`  incept ${m.samples.map(fmt).join(', ')} -> median ${fmt(ms)}, ${((1000 * o.batch) / ms).toFixed(2)} images/s`);
      if (peer?.ms) say(`  speed-up (tfjs ms / incept ms): ${(peer.ms / ms).toFixed(2)}x`);
      if (timed.ratios) say(`  step / forward at batch ${o.batch}: ${timed.ratios.map((r) => r.toFixed(2)).join(', ')} -> median ${median(timed.ratios).toFixed(2)}x`);
      const peerRef = peer ? { name: peer.name, ms: peer.ms } : null;
      const common = {
        batch: o.batch,
        micro_batch: trainer.microBatch,
        microbatches: trainer.microBatches,
        dispatches: trainer.dispatchCount,
        trained_tensors: trainer.training.trainedParams.length,
        trained_values: st.trained,
        param_bytes: paramBytes,
        param_grad_bytes: st.grads,
        optimizer_state_bytes: st.optimizer,
      };
      cases.push({
        ...result(label, flops, ms, peerRef, trainer.peakBytes),
        ...common,
        steps: m.samples.length,
        samples_ms: m.samples,
        images_per_s: (1000 * o.batch) / ms,
        forward_samples_ms: timed.forward ?? null,
        step_over_forward: timed.ratios ? median(timed.ratios) : null,
        losses: m.losses,
        initial_loss: m.initialLoss,
        peer_steps: peer ? 1 : null,
        peer_samples_ms: peer?.ms ? [peer.ms] : null,
        peer_images_per_s: peer?.ms ? (1000 * o.batch) / peer.ms : null,
        peer_initial_loss: peer?.initialLoss ?? null,
        initial_loss_abs_diff: peer ? Math.abs(peer.initialLoss - m.initialLoss) : null,
        peer_gpu_bytes: peer?.gpuBytes ?? null,
        peer_param_bytes: peer?.paramBytes ?? null,
        peer_optimizer_state_bytes: peer?.optimizerBytes ?? null,
      });
      cases.push({
        ...result(`${label} first step`, null, m.buildMs + m.firstStepMs, peer ? { name: peer.name, ms: peer.firstMs } : null, trainer.peakBytes),
        ...common,
        build_ms: m.buildMs,
        first_step_ms: m.firstStepMs,
        peer_setup_ms: peer?.setupMs ?? null,
        peer_first_step_ms: peer?.firstStepMs ?? null,
      });
      summary.push([
        label,
        ((1000 * o.batch) / ms).toFixed(2),
        peer?.ms ? ((1000 * o.batch) / peer.ms).toFixed(3) : '-',
        fmt(m.buildMs + m.firstStepMs),
        `${trainer.microBatches}x${trainer.microBatch}`,
        mib(trainer.peakBytes),
        mib(paramBytes),
        mib(st.grads),
        mib(st.optimizer),
        m.initialLoss.toFixed(5),
        peer ? peer.initialLoss.toFixed(5) : '-',
      ]);
    }

    if (o.bigBatch > 0) {
      const label = `${base} batch ${o.bigBatch} (a) ${CASE_LABEL.a}`;
      model.parametersChanged();
      say(`${label}: incept build ...`);
      t = performance.now();
      const trainer = newTrainer(o.bigBatch, 'a');
      const buildMs = performance.now() - t;
      say(`  build ${fmt(buildMs)}; ${describe(trainer, paramBytes)}`);
      const st = stateBytes(trainer);
      const samples: number[] = [];
      const losses: number[] = [];
      try {
        const big = inputData(o.bigBatch * per, 100 + o.bigBatch);
        const bigLabels = labelData(o.bigBatch, CLASSES, 7);
        for (let i = 0; i < o.bigSteps; i++) {
          t = performance.now();
          losses.push((await trainer.trainStep(big, bigLabels)).loss);
          samples.push(performance.now() - t);
          say(`  step ${i}: ${fmt(samples[i])}, loss ${losses[i].toFixed(6)}, ${((1000 * o.bigBatch) / samples[i]).toFixed(2)} images/s`);
        }
      } finally {
        trainer.dispose();
      }
      const ms = samples.length ? median(samples) : null;
      cases.push({
        ...result(`${label}${samples.length ? ', step after build' : ', planned only'}`, trainFlops(model.graph, trainableFor(model.graph, 'a')) * o.bigBatch, ms, null, trainer.peakBytes),
        batch: o.bigBatch,
        micro_batch: trainer.microBatch,
        microbatches: trainer.microBatches,
        dispatches: trainer.dispatchCount,
        build_ms: buildMs,
        steps: samples.length,
        samples_ms: samples,
        losses,
        images_per_s: ms ? (1000 * o.bigBatch) / ms : null,
        param_bytes: paramBytes,
        param_grad_bytes: st.grads,
        optimizer_state_bytes: st.optimizer,
      });
      summary.push([
        label,
        ms ? ((1000 * o.bigBatch) / ms).toFixed(2) : '-',
        '-',
        `build ${fmt(buildMs)}`,
        `${trainer.microBatches}x${trainer.microBatch}`,
        mib(trainer.peakBytes),
        mib(paramBytes),
        mib(st.grads),
        mib(st.optimizer),
        losses.length ? losses[0].toFixed(5) : '-',
        '-',
      ]);
    }
  } finally {
    model.dispose();
  }

  // The shared table has no room for these; they go first, on stdout too.
  const header = ['case', 'images/s', 'peer images/s', 'first step', 'micro-batches', 'peak', 'parameters', 'param grads', 'RMSProp state', 'initial loss', 'peer initial loss'];
  const widths = header.map((h, i) => Math.max(h.length, ...summary.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...summary.map(line), ''].join('\n'));

  const timing = [
    'wall clock per training step, both sides: images + labels upload, forward + loss + backward + RMSProp update to completion, loss readback',
    `incept: median of ${o.steps} steps after the first step (build + compile + step, reported apart)`,
    o.peer && o.cases.includes('a')
      ? 'tfjs (case a only): ONE step after one warm-up step (its first step: variable set-up + step, shaders compile lazily); ' +
        'one tfjs op per graph node, tf.variableGrads, padded average pools as pad + VALID average + border correction (tfjs\'s own AvgPoolGrad is wrong at borders)'
      : null,
    `random weights seed ${SEED}, no aux head, ${CLASSES} classes, dropout 0.8 with the same mask on both sides, RMSProp(lr ${LR}, decay 0.9, momentum 0.9, epsilon 1.0)`,
    'peak = planned activations and their gradients; parameters, parameter gradients and RMSProp state come on top (see the JSON)',
  ]
    .filter(Boolean)
    .join('; ');
  return { suite: 'train', adapter: rt.adapterName, timing, cases };
}

/** The tfjs side of case (a): set-up, a warm-up step (its loss checked against incept's), one timed step. */
async function runPeer(graph: Graph, trainer: Trainer, images: Float32Array, labels: Int32Array, inceptLoss: number) {
  const peer = await loadTfjs();
  const tf = peer.tf;
  await registerTfjsGradients();
  const batch = labels.length;
  const drop = dropoutMultipliers(trainer);
  const mask = (step: number) => (node: { name: string }) => maskFor(drop.get(node.name)!, step, batch, trainer.microBatch);
  say(`  ${peer.name}: set-up and warm-up step (minutes) ...`);
  let t = performance.now();
  const tt = new TfjsTrainer(tf, graph, {
    trainable: trainableFor(graph, 'a'),
    learningRate: LR,
    rmsprop: { decay: OPTIMIZER.decay!, momentum: OPTIMIZER.momentum!, epsilon: OPTIMIZER.epsilon! },
  });
  const setupMs = performance.now() - t;
  try {
    t = performance.now();
    const initialLoss = await tt.trainStep(images, labels, mask(0));
    const firstStepMs = performance.now() - t;
    const diff = Math.abs(initialLoss - inceptLoss);
    say(
      `  initial loss: incept ${inceptLoss.toFixed(6)}, tfjs ${initialLoss.toFixed(6)}, |diff| ${diff.toExponential(2)} ` +
        `(${diff <= LOSS_TOLERANCE ? 'agree' : 'DISAGREE'} within ${LOSS_TOLERANCE})`,
    );
    if (!(diff <= LOSS_TOLERANCE)) say(`incept bench: warning: incept and tfjs initial losses differ by ${diff.toExponential(2)}`);
    if (trainer.microBatches > 1) say(`  note: incept runs ${trainer.microBatches} micro-batches (batchnorm statistics per micro-batch); tfjs the whole batch`);
    say(`  tfjs first step ${fmt(setupMs + firstStepMs)}: set-up ${fmt(setupMs)} + step ${fmt(firstStepMs)}; timed step ...`);
    t = performance.now();
    const loss = await tt.trainStep(images, labels, mask(1));
    const ms = performance.now() - t;
    const mem = tf.memory() as { numBytesInGPUAllocated?: number; numBytesAllocatedInGPU?: number };
    const gpuBytes = mem.numBytesInGPUAllocated ?? mem.numBytesAllocatedInGPU ?? null;
    say(`  tfjs step ${fmt(ms)} (loss ${loss.toFixed(6)}), ${((1000 * batch) / ms).toFixed(3)} images/s${gpuBytes ? `; holds ${mib(gpuBytes)} of GPU buffers (its pool included)` : ''}`);
    return {
      name: peer.name,
      ms,
      firstMs: setupMs + firstStepMs,
      setupMs,
      firstStepMs,
      initialLoss,
      gpuBytes,
      paramBytes: tt.paramBytes,
      optimizerBytes: tt.optimizerStateBytes,
    };
  } finally {
    tt.dispose();
    // Give back tfjs's buffer pool (gigabytes after a step) before incept's remaining cases.
    tf.removeBackend('webgpu');
  }
}
