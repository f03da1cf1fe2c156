// The inference executor: compiles a graph (fixed input shape and batch) into a static plan, once,
// and replays it with one compute pass and one submit per run, no readback between ops.
//   fusion    conv + batchnorm (folded to scale/shift) + bias + ReLU/ReLU6 is one dispatch;
//   concat    producers (convs, pools) write straight into their channel slice of the output;
//   views     reshape/squeeze/dropout share their input's bytes;
//   memory    every other value gets a slot; slots share a buffer only when their lifetimes do
//             not overlap (planner.ts), and the planned peak is reported.
import { type Dispatch, type PreparedDispatch, encodePass, prepare } from '../gpu/recorder.ts';
import { GpuError, type Runtime } from '../gpu/runtime.ts';
import { type Shape, Tensor, empty, shapeString, sizeOf, upload } from '../gpu/tensor.ts';
import { batchnormDispatch, foldBatchnorm } from '../kernels/batchnorm.ts';
import { binaryDispatch } from '../kernels/binary.ts';
import { concatDispatch } from '../kernels/concat.ts';
import { type Activation, type ConvEpilogue, conv2dDispatch } from '../kernels/conv2d.ts';
import { matmulDispatch } from '../kernels/matmul.ts';
import { globalPoolAttrs, poolDispatch } from '../kernels/pool.ts';
import { reduceDispatch } from '../kernels/reduce.ts';
import { softmaxDispatch } from '../kernels/softmax.ts';
import { unaryDispatch } from '../kernels/unary.ts';
import { type Graph, type Node, batchnormInputs } from './ir.ts';
import { type MemoryPlan, planMemory } from './planner.ts';

/** GPU copies of a graph's parameters, uploaded once and shared by every plan of that graph. */
export class ParamStore {
  private readonly tensors = new Map<string, Tensor>();
  constructor(readonly rt: Runtime) {}

  get(graph: Graph, name: string): Tensor {
    let t = this.tensors.get(name);
    if (!t) {
      const p = graph.param(name);
      t = upload(this.rt, p.data, p.shape, name);
      this.tensors.set(name, t);
    }
    return t;
  }

  /** Uploads host-side constants (folded batchnorm) under a derived name. */
  constant(name: string, data: Float32Array): Tensor {
    let t = this.tensors.get(name);
    if (!t) {
      t = upload(this.rt, data, [data.length], name);
      this.tensors.set(name, t);
    }
    return t;
  }

  /** Forgets uploaded copies (after the host data changed, e.g. a checkpoint was loaded). */
  clear(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}

export interface CompileOptions {
  /** Values to read back (default: the graph's outputs). End point names are accepted too. */
  outputs?: string[];
  /** Fuse conv + batchnorm + bias + activation and write concats in place (default true). */
  fuse?: boolean;
  params?: ParamStore;
}

interface Slot {
  id: number;
  bytes: number;
  first: number;
  last: number;
}

/** Where a value lives: a slot, and for an in-place concat input, a channel slice of it. */
interface Location {
  slot: Slot;
  shape: Shape; // the shape of the bytes in the slot (the concat output for slices)
  channelOffset: number;
  sliceOf?: string; // the concat value this is a slice of
}

interface ConvGroup {
  epilogue: { scale?: Float32Array; shift?: Float32Array; bias?: string; activation: Activation };
  out: string; // value the group's last node produces
}

export interface PlanStep {
  node: string;
  op: string;
  fused: string[]; // nodes folded into this step
  dispatches: number;
}

export class Plan {
  /** Dispatches recorded per run. */
  readonly dispatchCount: number;

  constructor(
    readonly rt: Runtime,
    readonly graph: Graph,
    readonly outputs: string[],
    readonly steps: PlanStep[],
    readonly memory: MemoryPlan,
    private readonly buffers: GPUBuffer[],
    private readonly inputViews: Map<string, Tensor>,
    private readonly outputViews: Map<string, Tensor>,
    private readonly prepared: PreparedDispatch[],
    /** Each value's slot and byte offset, for checks and debugging. */
    readonly layout: Map<string, { slot: number; buffer: number; bytes: number }>,
  ) {
    this.dispatchCount = prepared.length;
  }

  get peakBytes(): number {
    return this.memory.peakBytes;
  }

  /**
   * Runs the plan on inputs (host arrays or tensors, by input name; a single value for a
   * one-input graph). Returns new tensors for the outputs; the caller disposes them.
   */
  run(inputs: Float32Array | Tensor | Record<string, Float32Array | Tensor>): Record<string, Tensor> {
    const named =
      inputs instanceof Float32Array || inputs instanceof Tensor ? { [this.graph.inputs[0].name]: inputs } : inputs;
    const device = this.rt.device;
    const results: Record<string, Tensor> = {};
    this.rt.scoped(`run ${this.graph.name}`, () => {
      const enc = device.createCommandEncoder({ label: this.graph.name });
      for (const [name, view] of this.inputViews) {
        const v = named[name];
        if (v === undefined) throw new GpuError(`${this.graph.name}: input '${name}' not given`);
        if (v instanceof Tensor) {
          if (shapeString(v.shape) !== shapeString(view.shape)) {
            throw new GpuError(`${this.graph.name}: input '${name}' is ${shapeString(v.shape)}; the plan was compiled for ${shapeString(view.shape)}`);
          }
          enc.copyBufferToBuffer(v.buffer, v.byteOffset, view.buffer, view.byteOffset, view.bytes);
        } else {
          if (v.length !== view.size) {
            throw new GpuError(`${this.graph.name}: input '${name}' has ${v.length} values; shape ${shapeString(view.shape)} needs ${view.size}`);
          }
          checkFinite(v, `${this.graph.name} input '${name}'`);
          device.queue.writeBuffer(view.buffer, view.byteOffset, v.buffer, v.byteOffset, view.bytes);
        }
      }
      encodePass(enc, this.prepared);
      for (const [name, view] of this.outputViews) {
        const out = empty(this.rt, view.shape, 'float32', name);
        enc.copyBufferToBuffer(view.buffer, view.byteOffset, out.buffer, 0, view.bytes);
        results[name] = out;
      }
      device.queue.submit([enc.finish()]);
    });
    return results;
  }

  /** Runs and reads every output back. */
  async runToHost(inputs: Parameters<Plan['run']>[0]): Promise<Record<string, Float32Array>> {
    const tensors = this.run(inputs);
    const out: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(tensors)) {
      out[k] = await t.read();
      t.dispose();
    }
    return out;
  }

  destroy(): void {
    for (const d of this.prepared) d.uniform.destroy();
    for (const b of this.buffers) b.destroy();
  }
}

function checkFinite(v: Float32Array, what: string): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new GpuError(`${what}: value ${i} is ${v[i]} (inputs must be finite)`);
  }
}

const VIEW_OPS = new Set(['reshape', 'squeeze', 'dropout']);

/** Compiles `graph` into a plan: fusion, in-place concat, memory planning, prepared dispatches. */
export function compile(rt: Runtime, graph: Graph, opts: CompileOptions = {}): Plan {
  const fuse = opts.fuse ?? true;
  const params = opts.params ?? new ParamStore(rt);
  const outputs = (opts.outputs ?? graph.outputs).map((o) => (graph.has(o) ? o : graph.endPoint(o)));
  const isOutput = new Set(outputs);

  const consumers = new Map<string, Node[]>();
  for (const n of graph.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const sole = (v: string): Node | undefined => {
    const c = consumers.get(v);
    return c && c.length === 1 && !isOutput.has(v) ? c[0] : undefined;
  };

  // 1. Fusion groups: conv -> [batchnorm] -> [bias_add] -> [relu | relu6].
  const groups = new Map<string, ConvGroup>(); // conv node name -> group
  const absorbedBy = new Map<string, string>(); // absorbed node name -> conv node name
  if (fuse) {
    for (const node of graph.nodes) {
      if (node.op !== 'conv2d') continue;
      const group: ConvGroup = { epilogue: { activation: 'none' }, out: node.output };
      let next = sole(group.out);
      if (next?.op === 'batchnorm' && next.inputs[0] === group.out) {
        const bn = batchnormInputs(next);
        const folded = foldBatchnorm(
          bn.gamma ? graph.param(bn.gamma).data : undefined,
          bn.beta ? graph.param(bn.beta).data : new Float32Array(node.shape[3]),
          graph.param(bn.mean).data,
          graph.param(bn.variance).data,
          next.attrs.epsilon,
        );
        group.epilogue.scale = folded.scale;
        group.epilogue.shift = folded.shift;
        absorbedBy.set(next.name, node.name);
        group.out = next.output;
        next = sole(group.out);
      }
      if (next?.op === 'bias_add' && next.inputs[0] === group.out) {
        group.epilogue.bias = next.inputs[1];
        absorbedBy.set(next.name, node.name);
        group.out = next.output;
        next = sole(group.out);
      }
      if ((next?.op === 'relu' || next?.op === 'relu6') && next.inputs[0] === group.out) {
        group.epilogue.activation = next.op;
        absorbedBy.set(next.name, node.name);
        group.out = next.output;
      }
      groups.set(node.name, group);
    }
  }
  const producerOf = (v: string): Node | undefined => graph.producer(v);
  const groupProducing = (v: string): string | undefined => {
    const p = producerOf(v);
    if (!p) return undefined;
    const convName = p.op === 'conv2d' ? p.name : absorbedBy.get(p.name);
    return convName && groups.get(convName)?.out === v ? convName : undefined;
  };

  // 2. In-place concat: inputs made by a conv group or a pool, read only by the concat.
  const intoConcat = new Map<string, { concat: string; channelOffset: number }>();
  if (fuse) {
    for (const node of graph.nodes) {
      if (node.op !== 'concat' || node.shape.length !== 4 || (node.attrs.axis !== 3 && node.attrs.axis !== -1)) continue;
      let off = 0;
      for (const v of node.inputs) {
        const p = producerOf(v);
        const inPlace =
          sole(v) === node &&
          !intoConcat.has(v) &&
          (groupProducing(v) !== undefined || p?.op === 'maxpool' || p?.op === 'avgpool');
        if (inPlace) intoConcat.set(v, { concat: node.output, channelOffset: off });
        off += graph.shapeOf(v)[3];
      }
    }
  }

  // 3. Storage: slots, lifetimes, locations.
  const slots: Slot[] = [];
  const loc = new Map<string, Location>();
  const newSlot = (shape: Shape, step: number): Slot => {
    const s = { id: slots.length, bytes: sizeOf(shape) * 4, first: step, last: step };
    slots.push(s);
    return s;
  };
  const locate = (v: string, step: number): Location => {
    const l = loc.get(v);
    if (l) return l;
    const target = intoConcat.get(v);
    if (target) {
      const whole = locate(target.concat, step);
      const l2: Location = { slot: whole.slot, shape: whole.shape, channelOffset: target.channelOffset, sliceOf: target.concat };
      loc.set(v, l2);
      return l2;
    }
    const l3: Location = { slot: newSlot(graph.shapeOf(v), step), shape: graph.shapeOf(v), channelOffset: 0 };
    loc.set(v, l3);
    return l3;
  };
  const read = (v: string, step: number): Location => {
    const l = loc.get(v);
    if (!l) throw new Error(`${graph.name}: value '${v}' is read before it is written`);
    if (l.sliceOf) throw new Error(`${graph.name}: value '${v}' lives in a concat slice and cannot be read directly`);
    l.slot.last = Math.max(l.slot.last, step);
    return l;
  };
  for (const input of graph.inputs) locate(input.name, 0);

  // Work list in node order; each entry builds its dispatches once tensors exist.
  type Build = (view: (v: string) => Tensor) => Dispatch[];
  const work: { step: PlanStep; build: Build }[] = [];
  let step = 0;
  const isParam = (v: string) => graph.params.has(v);
  for (const node of graph.nodes) {
    if (absorbedBy.has(node.name)) continue; // computed by its conv's epilogue
    step++;
    const s = step;
    const acts = node.inputs.filter((v) => !isParam(v));
    for (const v of acts) if (intoConcat.get(v)?.concat !== node.output) read(v, s);
    if (VIEW_OPS.has(node.op)) {
      const src = loc.get(node.inputs[0])!;
      if (src.channelOffset !== 0 || src.sliceOf) throw new Error(`${node.name}: cannot view a concat slice`);
      loc.set(node.output, { slot: src.slot, shape: src.shape, channelOffset: 0 });
      continue; // no dispatch
    }
    const group = node.op === 'conv2d' ? groups.get(node.name) : undefined;
    const outValue = group ? group.out : node.output;
    const out = locate(outValue, s);
    out.slot.first = Math.min(out.slot.first, s);
    out.slot.last = Math.max(out.slot.last, s);
    if (group) for (const [absorbed, conv] of absorbedBy) if (conv === node.name) loc.set(absorbed, out);
    const fused = group ? [...absorbedBy].filter(([, c]) => c === node.name).map(([a]) => a) : [];
    work.push({
      step: { node: node.name, op: node.op, fused, dispatches: 0 },
      build: (view) => dispatchesFor(node, group, view, out),
    });
  }
  for (const o of outputs) {
    const l = loc.get(o);
    if (!l) throw new Error(`${graph.name}: output '${o}' is not computed by this graph`);
    if (l.sliceOf) throw new Error(`${graph.name}: output '${o}' lives in a concat slice`);
    l.slot.last = Number.MAX_SAFE_INTEGER;
  }

  // 4. Memory plan and buffers.
  const memory = planMemory(slots.filter((s) => s.bytes > 0));
  const bufferOf = new Map(memory.placements.map((p) => [p.id, p.buffer]));
  for (const s of slots) {
    rt.checkBindingSize(s.bytes, `${graph.name}: a tensor of the plan (batch ${graph.inputs[0]?.shape[0]}); split the batch`);
  }
  const buffers = memory.buffers.map((size, i) =>
    rt.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label: `${graph.name} plan buffer ${i}`,
    }),
  );
  const tensorAt = (l: Location, shape: Shape): Tensor => new Tensor(rt, buffers[bufferOf.get(l.slot.id)!], shape, 'float32', false);
  const view = (v: string): Tensor => {
    if (isParam(v)) return params.get(graph, v);
    const l = loc.get(v)!;
    return tensorAt(l, graph.shapeOf(v));
  };

  function dispatchesFor(node: Node, group: ConvGroup | undefined, v: (n: string) => Tensor, out: Location): Dispatch[] {
    const y = tensorAt(out, out.shape);
    switch (node.op) {
      case 'conv2d': {
        const epi: ConvEpilogue = { activation: group?.epilogue.activation ?? 'none' };
        const e = group?.epilogue;
        if (e?.scale) epi.scale = params.constant(`${node.name}/folded_scale`, e.scale);
        if (e?.shift) epi.shift = params.constant(`${node.name}/folded_shift`, e.shift);
        if (e?.bias) epi.bias = v(e.bias);
        return [conv2dDispatch(v(node.inputs[0]), v(node.inputs[1]), y, node.attrs, epi, out.channelOffset)];
      }
      case 'batchnorm': {
        const bn = batchnormInputs(node);
        const p = { gamma: bn.gamma ? v(bn.gamma) : undefined, beta: v(bn.beta!), mean: v(bn.mean), variance: v(bn.variance) };
        return [batchnormDispatch(v(bn.x), p, y, { epsilon: node.attrs.epsilon })];
      }
      case 'bias_add':
        return [binaryDispatch('add', v(node.inputs[0]), v(node.inputs[1]), y)];
      case 'relu':
        return [unaryDispatch('relu', v(node.inputs[0]), y)];
      case 'relu6':
        return [unaryDispatch('clip', v(node.inputs[0]), y, { lo: 0, hi: 6 })];
      case 'sigmoid':
        return [unaryDispatch('sigmoid', v(node.inputs[0]), y)];
      case 'maxpool':
      case 'avgpool': {
        const a = node.attrs;
        const attrs = { kernel: a.kernel, strides: a.strides, padding: a.padding, ceilMode: a.ceilMode, countIncludePad: a.countIncludePad ?? false };
        return [poolDispatch(node.op === 'maxpool' ? 'max' : 'avg', v(node.inputs[0]), y, attrs, out.channelOffset)];
      }
      case 'globalavgpool': {
        const x = v(node.inputs[0]);
        const y4 = y.reshape([x.shape[0], 1, 1, x.shape[3]]);
        return [poolDispatch('avg', x, y4, globalPoolAttrs(x.shape))];
      }
      case 'mean':
        return [reduceDispatch('mean', v(node.inputs[0]), y, { axes: node.attrs.axes, keepdims: node.attrs.keepDims })];
      case 'concat': {
        const inputs = node.inputs.map((i) => (intoConcat.get(i)?.concat === node.output ? null : v(i)));
        // In-place inputs get a placeholder so the kernel computes every slice offset; their
        // copies are dropped below.
        const placeholder = (i: string) => new Tensor(rt, y.buffer, graph.shapeOf(i), 'float32', false);
        const all = concatDispatch(node.inputs.map((i, k) => inputs[k] ?? placeholder(i)), y, node.attrs.axis);
        if (all.length !== node.inputs.length) throw new Error(`${node.name}: concat of empty inputs is not planned`);
        return all.filter((_, k) => inputs[k] !== null);
      }
      case 'matmul':
        return [matmulDispatch(v(node.inputs[0]), v(node.inputs[1]), y, node.attrs)];
      case 'add':
      case 'mul':
        return [binaryDispatch(node.op, v(node.inputs[0]), v(node.inputs[1]), y)];
      case 'softmax':
        return [softmaxDispatch(v(node.inputs[0]), y, { axis: node.attrs.axis })];
      case 'logsoftmax':
        return [softmaxDispatch(v(node.inputs[0]), y, { axis: node.attrs.axis, log: true })];
      default:
        throw new Error(`${node.name}: the executor has no kernel for op '${node.op}'`);
    }
  }

  // 5. Dispatches, prepared once.
  const prepared: PreparedDispatch[] = [];
  const steps: PlanStep[] = [];
  for (const item of work) {
    let ds: Dispatch[];
    try {
      ds = item.build(view);
    } catch (e) {
      throw new Error(`${item.step.node}: ${(e as Error).message}`);
    }
    item.step.dispatches = ds.length;
    steps.push(item.step);
    for (const d of ds) prepared.push(prepare(rt, { ...d, label: `${item.step.node}: ${d.label}` }));
  }
  const inputViews = new Map(graph.inputs.map((i) => [i.name, view(i.name)]));
  const outputViews = new Map(outputs.map((o) => [o, view(o)]));
  const layout = new Map<string, { slot: number; buffer: number; bytes: number }>();
  for (const [v, l] of loc) layout.set(v, { slot: l.slot.id, buffer: bufferOf.get(l.slot.id)!, bytes: l.slot.bytes });
  return new Plan(rt, graph, outputs, steps, memory, buffers, inputViews, outputViews, prepared, layout);
}
