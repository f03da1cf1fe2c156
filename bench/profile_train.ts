// Per-dispatch GPU profile of one Inception v3 training step (bench train's case (b) by default:
// Mixed_7* and Logits train). After a warm-up step, the step's dispatches (program, then optimizer
// update) are replayed once, each in its own compute pass with a timestamp pair, in one submit:
// the data in the buffers is the step's own, so data-dependent costs are real. Rows are grouped
// by kernel family (the first word of each dispatch's label) and by whether the step belongs to
// the trained top (Mixed_7*, Logits, loss, update) or the frozen body, and the conv and training
// batchnorm dispatches by the kernel variant they took (src/kernels/choice.ts: the tuned or
// default choice). `--case forward` profiles the inference plan (Model.predict's dispatches) the
// same way.
//
//   node scripts/quiet-dawn.mjs --import tsx bench/profile_train.ts [--batch 8] [--size 299] [--case a|b|forward] [--top 15]
import { type PreparedDispatch } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime, type Runtime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { Trainer } from '../src/train/trainer.ts';

const say = (msg: string) => process.stderr.write(`${msg}\n`);

interface Row {
  label: string;
  ms: number;
}

/** GPU milliseconds of each dispatch, in order, each in its own timed pass (one submit per chunk). */
async function timeEach(rt: Runtime, ds: readonly PreparedDispatch[]): Promise<Row[]> {
  const rows: Row[] = [];
  const chunk = 1024; // timestamp query sets hold at most 4096 queries
  for (let s = 0; s < ds.length; s += chunk) {
    const part = ds.slice(s, s + chunk);
    const n = part.length * 2;
    const qs = rt.device.createQuerySet({ type: 'timestamp', count: n });
    const resolve = rt.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const read = rt.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
    const enc = rt.device.createCommandEncoder({ label: 'profile' });
    part.forEach((d, i) => {
      const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
      if (d.workgroups[0] * d.workgroups[1] * d.workgroups[2] > 0) {
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.bindGroup);
        pass.dispatchWorkgroups(...d.workgroups);
      }
      pass.end();
    });
    enc.resolveQuerySet(qs, 0, n, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, n * 8);
    rt.device.queue.submit([enc.finish()]);
    await rt.sync();
    await read.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    part.forEach((d, i) => rows.push({ label: d.label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
    qs.destroy();
    resolve.destroy();
    read.destroy();
  }
  return rows;
}

/** Kernel family: the first word of the dispatch's own label (after the step name). */
function family(label: string): string {
  const own = label.includes(': ') ? label.slice(label.indexOf(': ') + 2) : label;
  const word = own.split(/[ (]/)[0];
  return label.includes('sum of') ? `${word} (split-K sum)` : word;
}

/** The kernel variant a dispatch's label names (conv kernels: "... [subgroup-r32]"), or ''. */
function variant(label: string): string {
  return /\[([\w.-]+)\]$/.exec(label)?.[1] ?? '';
}

function region(label: string, update: boolean): string {
  if (update) return 'update';
  return /Mixed_7|Logits|loss|softmax/i.test(label) ? 'top' : 'frozen';
}

function table(rows: Row[], key: (r: Row) => string, total: number): string[] {
  const acc = new Map<string, { ms: number; n: number }>();
  for (const r of rows) {
    const a = acc.get(key(r)) ?? { ms: 0, n: 0 };
    a.ms += r.ms;
    a.n++;
    acc.set(key(r), a);
  }
  return [...acc.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([k, a]) => `| ${k} | ${a.n} | ${a.ms.toFixed(0)} | ${((100 * a.ms) / total).toFixed(1)}% |`);
}

async function main(argv: string[]): Promise<void> {
  const opt = (flag: string, def: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : def);
  const batch = Number(opt('--batch', '8'));
  const size = Number(opt('--size', '299'));
  const which = opt('--case', 'b');
  const top = Number(opt('--top', '15'));
  if (!['a', 'b', 'forward'].includes(which)) throw new Error(`profile: --case must be a, b or forward, not '${which}'`);
  const rt = await getRuntime();
  if (!rt.hasTimestamps) throw new Error('profile: the adapter has no timestamp queries');
  const model = await Model.inceptionV3({ inputSize: size, numClasses: 1001, auxLogits: false, seed: 1 }, rt);
  const per = model.inputShape.reduce((a, b) => a * b, 1);
  const images = Float32Array.from({ length: batch * per }, (_, i) => Math.sin(i * 0.37));
  const { wallMs, rows, profWall, dispose } = which === 'forward' ? await profileForward(rt, model, images, batch) : await profileStep(rt, model, images, batch, which);
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const out: string[] = [];
  out.push(`case (${which}) batch ${batch} ${size}x${size}: ${which === 'forward' ? 'predict' : 'step'} wall ${wallMs.toFixed(0)} ms; ${rows.length} dispatches, GPU sum ${total.toFixed(0)} ms (profiled replay wall ${profWall.toFixed(0)} ms)`);
  out.push('', '| family | dispatches | ms | share |', '|---|---|---|---|');
  out.push(...table(rows, (r) => family(r.label), total));
  out.push('', '| region / family | dispatches | ms | share |', '|---|---|---|---|');
  out.push(...table(rows, (r) => `${region(r.label, r.label.startsWith('update: '))} ${family(r.label)}`, total));
  out.push('', '| family / kernel variant | dispatches | ms | share |', '|---|---|---|---|');
  out.push(...table(rows.filter((r) => variant(r.label)), (r) => `${family(r.label)} ${variant(r.label)}`, total));
  out.push('', `top ${top} dispatches (conv and batchnorm labels end with their kernel variant):`);
  for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, top)) out.push(`  ${r.ms.toFixed(1)} ms  ${r.label}`);
  console.log(out.join('\n'));
  dispose();
}

interface Profile {
  wallMs: number;
  rows: Row[];
  profWall: number;
  dispose: () => void;
}

/** One training step (case a: all layers; b: Mixed_7* and Logits), warmed up, then replayed. */
async function profileStep(rt: Runtime, model: Model, images: Float32Array, batch: number, which: string): Promise<Profile> {
  const g = model.graph;
  const trainable = (p: string) => g.param(p).trainable && (which === 'a' || p.includes('Mixed_7') || p.includes('Logits'));
  const trainer = new Trainer(model, {
    batch,
    optimizer: { kind: 'rmsprop', decay: 0.9, momentum: 0.9, epsilon: 1.0 },
    learningRate: 0.01,
    training: { trainable },
  });
  if (trainer.microBatches !== 1) throw new Error('profile: the step runs as micro-batches; pick a smaller batch');
  const labels = Int32Array.from({ length: batch }, (_, i) => (i * 97) % 1001);
  await trainer.trainStep(images, labels); // compiles pipelines, fills the buffers
  let t = performance.now();
  await trainer.trainStep(images, labels);
  const wallMs = performance.now() - t;
  const program = trainer.program.dispatches;
  const update = trainer.updateDispatches;
  t = performance.now();
  const rows = [...(await timeEach(rt, program)), ...(await timeEach(rt, update)).map((r) => ({ ...r, label: `update: ${r.label}` }))];
  return { wallMs, rows, profWall: performance.now() - t, dispose: () => trainer.dispose() };
}

/** The inference plan of Model.predict at this batch, warmed up, then replayed. */
async function profileForward(rt: Runtime, model: Model, images: Float32Array, batch: number): Promise<Profile> {
  await model.predict(images); // compiles pipelines (and tunes, where autotuning is on)
  let t = performance.now();
  await model.predict(images);
  const wallMs = performance.now() - t;
  const program = model.plan(batch).dispatches;
  t = performance.now();
  const rows = await timeEach(rt, program);
  return { wallMs, rows, profWall: performance.now() - t, dispose: () => model.dispose() };
}

try {
  await main(process.argv.slice(2));
} catch (e) {
  say(`profile: error: ${(e as Error).stack}`);
  process.exitCode = 1;
} finally {
  await closeRuntime();
}
