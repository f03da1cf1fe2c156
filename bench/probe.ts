// Probe suite: what bounds the implicit-GEMM kernel on this adapter (written for lavapipe, where
// each invocation is one SIMD lane). Per GEMM shape, in one process, interleaved round by round:
//   engine      the engine's conv2d kernel on the GEMM as a 1x1 convolution (its chosen variant);
//   probe       conv2d.wgsl's design written out (R = 32 rows per subgroup shared by
//               subgroupShuffle, one vec4 column per lane, operands from storage buffers);
//   probe, no x loads / no w loads / no loads
//               the same kernel with that operand loaded once before the reduction loop instead
//               of at every step: wrong results, the same arithmetic, so the time it saves is
//               what those loads cost. Their 'peer' is the probe with its loads (speed-up = how
//               much faster the kernel would be if those loads were free).
// and a register-only loop (mul + add on 32 vec4 accumulators, 4 steps unrolled, no memory): the
// arithmetic rate this adapter gives WGSL at all.
//
//   npm run bench -- probe [--json FILE] [--shapes MxKxN,...] [--rounds N]
//
// The engine and the probe are checked against a float64 dot product on sampled entries, so a
// wrong kernel cannot post a time. GPU timestamps around each pass where the adapter has them
// (else the wall clock to the queue's completion; on lavapipe its best sample read up to 2x below
// the timestamps), median of the rounds. Needs subgroups.
import { type Runtime, getRuntime } from '../src/gpu/runtime.ts';
import { encodePass, prepare } from '../src/gpu/recorder.ts';
import { median } from '../src/gpu/timing.ts';
import { type Tensor, empty, upload } from '../src/gpu/tensor.ts';
import { recordChoices } from '../src/kernels/choice.ts';
import { conv2dDispatches } from '../src/kernels/conv2d.ts';
import { seededUniform } from '../src/kernels/seeded.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';

const ROWS = 32;
type Loads = 'both' | 'no-x' | 'no-w' | 'none';

/** The probe kernel: C[M, N] = A[M, K] B[K, N], A and B row-major, N and K multiples of 4. */
function probeShader(sg: number, loads: Loads): string {
  const rpl = ROWS / sg;
  const loadX = `for (var j = 0u; j < ${rpl}u; j++) { let m = min(m0 + lane + j * ${sg}u, p.M - 1u); mine[j] = a[m * K4 + k / 4u]; }`;
  const loadW = 'b0 = b[k * N4 + colc]; b1 = b[(k + 1u) * N4 + colc]; b2 = b[(k + 2u) * N4 + colc]; b3 = b[(k + 3u) * N4 + colc];';
  const rows = Array.from({ length: ROWS }, (_, r) => `{ let v = subgroupShuffle(mine[${Math.floor(r / sg)}], ${r % sg}u); acc[${r}] += b0 * v.x + b1 * v.y + b2 * v.z + b3 * v.w; }`);
  return `enable subgroups;
struct P { M: u32, N: u32, K: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let N4 = p.N / 4u; let K4 = p.K / 4u;
  let col = wg.x * ${sg}u + lane; let colc = min(col, N4 - 1u);
  let m0 = wg.y * ${ROWS}u;
  var acc: array<vec4<f32>, ${ROWS}>;
  var mine: array<vec4<f32>, ${rpl}>;
  var b0: vec4<f32>; var b1: vec4<f32>; var b2: vec4<f32>; var b3: vec4<f32>;
  { let k = 0u; ${loadX} ${loadW} }
  for (var k = 0u; k < p.K; k += 4u) {
    ${loads === 'both' || loads === 'no-w' ? loadX : ''}
    ${loads === 'both' || loads === 'no-x' ? loadW : ''}
    ${rows.join('\n    ')}
  }
  if (col >= N4) { return; }
  for (var r = 0u; r < ${ROWS}u; r++) { let m = m0 + r; if (m >= p.M) { break; } c[m * N4 + col] = acc[r]; }
}`;
}

/** mul + add on 32 independent vec4 accumulators, 4 steps per loop iteration, no memory traffic. */
const REGISTER_SHADER = `struct P { m: f32, c: f32, iters: f32, _a: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  ${Array.from({ length: 8 }, (_, i) => `var a${i} = vec4<f32>(f32(g.x + ${i}u));`).join(' ')}
  let m = vec4<f32>(p.m); let c = vec4<f32>(p.c);
  for (var i = 0u; i < u32(p.iters); i++) {
    ${Array.from({ length: 4 }, () => Array.from({ length: 8 }, (_, i) => `a${i} = a${i} * m + c;`).join(' ')).join('\n    ')}
  }
  o[g.x] = ${Array.from({ length: 8 }, (_, i) => `a${i}`).join(' + ')};
}`;
const REGISTER_GROUPS = 32;
const REGISTER_ITERS = 5000;
const REGISTER_FLOPS = 64 * REGISTER_GROUPS * 8 * 4 * 4 * 2 * REGISTER_ITERS;

type Encode = (enc: GPUCommandEncoder, timestampWrites?: GPUComputePassTimestampWrites) => void;

interface Timed {
  name: string;
  flops: number;
  encode: Encode;
  peer?: string;
  variant?: string;
  check?: () => Promise<string | null>;
}

/** Milliseconds of one pass: GPU timestamps where the adapter has them, else the wall clock. */
async function passMs(rt: Runtime, t: Timed): Promise<number> {
  const enc = rt.device.createCommandEncoder({ label: t.name });
  if (!rt.hasTimestamps) {
    const start = performance.now();
    t.encode(enc);
    rt.device.queue.submit([enc.finish()]);
    await rt.sync();
    return performance.now() - start;
  }
  const querySet = rt.device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolve = rt.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = rt.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  t.encode(enc, { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 });
  enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
  rt.device.queue.submit([enc.finish()]);
  await rt.sync();
  await read.mapAsync(GPUMapMode.READ);
  const [begin, end] = new BigUint64Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const b of [querySet, resolve, read]) b.destroy();
  return Number(end - begin) / 1e6;
}

function rawPass(rt: Runtime, code: string, buffers: GPUBufferBinding[], workgroups: [number, number]): Encode {
  const pipeline = rt.device.createComputePipeline({ layout: 'auto', compute: { module: rt.device.createShaderModule({ code }), entryPoint: 'main' } });
  const bindGroup = rt.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((resource, binding) => ({ binding, resource })) });
  return (enc, timestampWrites) => {
    const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : {});
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...workgroups);
    pass.end();
  };
}

function uniform(rt: Runtime, values: Uint32Array | Float32Array): GPUBuffer {
  const buf = rt.device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  rt.device.queue.writeBuffer(buf, 0, values);
  return buf;
}

/** Largest |got - float64 dot| over 64 sampled entries, relative to the largest |dot|; null when within 1e-4. */
async function checkSampled(rt: Runtime, name: string, out: Tensor, A: Float32Array, B: Float32Array, m: number, k: number, n: number): Promise<string | null> {
  const got = await out.read();
  let worst = 0;
  let scale = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % m;
    const j = (s * 104729) % n;
    let dot = 0;
    for (let t = 0; t < k; t++) dot += A[i * k + t] * B[t * n + j];
    worst = Math.max(worst, Math.abs(got[i * n + j] - dot));
    scale = Math.max(scale, Math.abs(dot));
  }
  return worst <= 1e-4 * scale + 1e-5 ? null : `${name}: max |diff| ${worst.toExponential(2)} against float64 (scale ${scale.toExponential(2)})`;
}

function gemmCases(rt: Runtime, m: number, k: number, n: number): Timed[] {
  const label = `${m}x${k}x${n}`;
  const A = seededUniform(m * k, 1);
  const B = seededUniform(k * n, 2);
  const x = upload(rt, A, [1, 1, m, k], 'probe A');
  const w = upload(rt, B, [1, 1, k, n], 'probe B');
  const y = empty(rt, [1, 1, m, n], 'float32', 'probe engine C');
  const { result: ds, choices } = recordChoices(() => conv2dDispatches(x, w, y, {}));
  const prepared = ds.map((d) => prepare(rt, d));
  const flops = 2 * m * k * n;
  const sg = rt.subgroupSize;
  const params = uniform(rt, new Uint32Array([m, n, k, 0]));
  // The probe with its loads keeps its own output for the check; the others (wrong on purpose) share one.
  const probeOut = empty(rt, [m, n], 'float32', 'probe C');
  const scratchOut = empty(rt, [m, n], 'float32', 'probe C without loads');
  const grid: [number, number] = [Math.ceil(n / 4 / sg), Math.ceil(m / ROWS)];
  const probe = (loads: Loads) => rawPass(rt, probeShader(sg, loads), [{ buffer: params }, x.binding, w.binding, (loads === 'both' ? probeOut : scratchOut).binding], grid);
  const withLoads = `probe ${label}`;
  return [
    { name: `engine ${label}`, flops, encode: (enc, ts) => encodePass(enc, prepared, ts), variant: choices.at(-1)?.variant, check: () => checkSampled(rt, `engine ${label}`, y, A, B, m, k, n) },
    { name: withLoads, flops, encode: probe('both'), check: () => checkSampled(rt, withLoads, probeOut, A, B, m, k, n) },
    { name: `probe ${label}, no x loads`, flops, encode: probe('no-x'), peer: withLoads },
    { name: `probe ${label}, no w loads`, flops, encode: probe('no-w'), peer: withLoads },
    { name: `probe ${label}, no loads`, flops, encode: probe('none'), peer: withLoads },
  ];
}

function parseArgs(argv: string[]): { shapes: [number, number, number][]; rounds: number } {
  let shapes = '256x256x256,289x1344x192,1024x1024x1024';
  let rounds = 9;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--shapes') shapes = argv[++i] ?? '';
    else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else throw new UsageError(`bench probe: unknown option '${argv[i]}' (options: --shapes MxKxN,... --rounds N)`);
  }
  if (!(rounds >= 1)) throw new UsageError('bench probe: --rounds needs a number >= 1');
  const parsed = shapes.split(',').map((s) => s.split('x').map(Number));
  for (const [i, s] of parsed.entries()) {
    if (s.length !== 3 || s.some((d) => !(d > 0) || !Number.isInteger(d)) || s[1] % 4 || s[2] % 4) {
      throw new UsageError(`bench probe: shape '${shapes.split(',')[i]}' is not MxKxN with K and N multiples of 4`);
    }
  }
  return { shapes: parsed as [number, number, number][], rounds };
}

export async function run(argv: string[]): Promise<Report> {
  const { shapes, rounds } = parseArgs(argv);
  const rt = await getRuntime();
  if (rt.subgroupSize <= 1) throw new UsageError('bench probe: the adapter has no subgroups (the probe kernel shares rows by subgroupShuffle)');
  const regOut = rt.device.createBuffer({ size: 64 * REGISTER_GROUPS * 16, usage: GPUBufferUsage.STORAGE });
  const timed: Timed[] = [
    { name: 'register-only mul+add, 32 vec4 accumulators', flops: REGISTER_FLOPS, encode: rawPass(rt, REGISTER_SHADER, [{ buffer: uniform(rt, new Float32Array([0.999, 0.001, REGISTER_ITERS, 0])) }, { buffer: regOut }], [REGISTER_GROUPS, 1]) },
    ...shapes.flatMap(([m, k, n]) => gemmCases(rt, m, k, n)),
  ];
  const samples = new Map<string, number[]>(timed.map((t) => [t.name, []]));
  for (let round = 0; round < rounds + 1; round++) {
    for (const t of timed) {
      const ms = await passMs(rt, t);
      if (round > 0) samples.get(t.name)!.push(ms); // round 0 warms up
    }
    process.stderr.write(`probe: round ${round + 1}/${rounds + 1}\n`);
  }
  const best = new Map([...samples].map(([name, xs]) => [name, median(xs)]));
  const failures = (await Promise.all(timed.map((t) => t.check?.() ?? null))).filter((f): f is string => f !== null);
  const cases: CaseResult[] = timed.map((t) => ({
    ...result(t.name, t.flops, best.get(t.name) ?? null, t.peer ? { name: t.peer, ms: best.get(t.peer) ?? null } : null, null),
    ...(t.variant ? { variant: t.variant } : {}),
  }));
  return { suite: 'probe', adapter: rt.adapterName, timing: `${rt.hasTimestamps ? 'GPU timestamps around each pass' : 'wall clock, submit to queue done'}, median of ${rounds} interleaved rounds after one warm-up round`, cases, failures };
}
