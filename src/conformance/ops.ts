// The conformance runner's op table: ONNX op -> a function running the engine's kernels.
// Values travel between nodes on the host in ONNX layout (NCHW, OIHW). A spatial op (Conv, pools,
// BatchNormalization) moves its input to the engine's channels-last layout (NHWC, HWIO filters),
// runs, and moves the result back; everything else runs on the ONNX shape as it is. Numbers that
// steer an op (shapes, axes, pads, clip bounds, dropout ratio) are read on the host.
import { run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Tensor, empty, upload } from '../gpu/tensor.ts';
import type { OnnxAttribute, OnnxDType, OnnxNode, OnnxTensor } from '../import/onnx-proto.ts';
import { type BinaryOp, binary, broadcastShapes } from '../kernels/binary.ts';
import { batchnorm } from '../kernels/batchnorm.ts';
import { batchnormTrainForwardDispatch, batchnormTrainWorkspaceShape } from '../kernels/batchnorm_train.ts';
import { concat } from '../kernels/concat.ts';
import { conv2d } from '../kernels/conv2d.ts';
import { negativeLogLikelihoodDispatch, softmaxCrossEntropyDispatch } from '../kernels/loss.ts';
import type { Padding } from '../kernels/padding.ts';
import { matmul } from '../kernels/matmul.ts';
import { type PadMode, pad } from '../kernels/pad.ts';
import { type PoolAttrs, type PoolMode, pool } from '../kernels/pool.ts';
import { type ReduceOp, reduce } from '../kernels/reduce.ts';
import { dropout, flatten, reshape, squeeze, unsqueeze } from '../kernels/shape.ts';
import { softmax } from '../kernels/softmax.ts';
import { OIHW_TO_HWIO, transpose, transposeHost } from '../kernels/transpose.ts';
import { type UnaryOp, unary } from '../kernels/unary.ts';

/** Thrown when a node needs something the engine deliberately lacks; the test is skipped with this reason. */
export class SkipTest extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SkipTest';
  }
}

export interface OpCall {
  rt: Runtime;
  node: OnnxNode;
  opset: number; // the model's ai.onnx opset
  inputs: (OnnxTensor | undefined)[]; // undefined: an omitted optional input
}

export interface OpSpec {
  /** Inputs read on the host as numbers (shape, axes, pads, bounds, ratio, flags); they may be any dtype. */
  hostInputs?: number[];
  /**
   * A deliberate limit this node hits, or null. `inputs` holds the values known so far
   * (before running: graph inputs, initializers and constants; undefined otherwise).
   */
  unsupported?(node: OnnxNode, inputs: (OnnxTensor | undefined)[], opset: number): string | null;
  /** The node's outputs, in order (float32, ONNX layout). */
  run(call: OpCall): Promise<OnnxTensor[]>;
}

// ---- attributes and host numbers ----

function attr(node: OnnxNode, name: string): OnnxAttribute | undefined {
  return node.attributes[name];
}
function attrInt(node: OnnxNode, name: string, dflt: number): number {
  const a = attr(node, name);
  return a?.type === 'int' ? a.value : dflt;
}
function attrFloat(node: OnnxNode, name: string, dflt: number): number {
  const a = attr(node, name);
  return a?.type === 'float' ? a.value : a?.type === 'int' ? a.value : dflt;
}
function attrInts(node: OnnxNode, name: string): number[] | undefined {
  const a = attr(node, name);
  return a?.type === 'ints' ? a.value : a?.type === 'int' ? [a.value] : undefined;
}
function attrString(node: OnnxNode, name: string, dflt: string): string {
  const a = attr(node, name);
  return a?.type === 'string' ? a.value : dflt;
}

/** A host-side input as plain numbers (int64 via Number: exact below 2^53). */
function numbers(t: OnnxTensor | undefined): number[] | undefined {
  if (!t) return undefined;
  if (Array.isArray(t.data)) throw new Error(`expected numbers, got a string tensor '${t.name}'`);
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}
function scalar(t: OnnxTensor | undefined): number | undefined {
  const v = numbers(t);
  if (v === undefined) return undefined;
  if (v.length !== 1) throw new Error(`expected a scalar, got ${v.length} values`);
  return v[0];
}

// ---- host <-> engine ----

const f32 = (dims: number[], data: Float32Array, name = ''): OnnxTensor => ({ name, dtype: 'float32', dims, data });

/**
 * Runs `fn` with an upload helper; every uploaded or produced tensor is released afterwards.
 * `fn` returns engine tensors, which are read back as float32 host values with the given ONNX dims.
 */
async function onEngine(
  rt: Runtime,
  fn: (up: (t: OnnxTensor, shape?: number[]) => Tensor, keep: (t: Tensor) => Tensor) => [Tensor, number[]][],
): Promise<OnnxTensor[]> {
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  const up = (t: OnnxTensor, shape: number[] = t.dims) => {
    if (t.dtype !== 'float32') throw new Error(`tensor '${t.name}' is ${t.dtype}; the engine computes float32 only`);
    return keep(upload(rt, t.data as Float32Array, shape, t.name || 'onnx'));
  };
  try {
    const outs = fn(up, keep);
    for (const [t] of outs) owned.push(t);
    const result: OnnxTensor[] = [];
    for (const [t, dims] of outs) result.push(f32(dims, await t.read()));
    return result;
  } finally {
    for (const t of new Set(owned)) t.dispose();
  }
}

/** [N, C, ...S] -> [N, ...S, C] (host). */
function toChannelsLast(t: OnnxTensor): OnnxTensor {
  const r = t.dims.length;
  const perm = [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2), 1];
  const { data, shape } = transposeHost(t.data as Float32Array, t.dims, perm);
  return f32(shape, data, t.name);
}

/** [N, ...S, C] -> [N, C, ...S] (host). */
function toChannelsFirst(t: OnnxTensor): OnnxTensor {
  const r = t.dims.length;
  const perm = [0, r - 1, ...Array.from({ length: r - 2 }, (_, i) => i + 1)];
  const { data, shape } = transposeHost(t.data as Float32Array, t.dims, perm);
  return f32(shape, data, t.name);
}

/** Runs a channels-last engine computation on an NCHW-style input and returns NCHW. */
async function spatial(call: OpCall, fn: (x: OnnxTensor) => Promise<OnnxTensor>): Promise<OnnxTensor[]> {
  const x = call.inputs[0]!;
  if (x.dims.length < 2) throw new Error(`${call.node.opType} needs an [N, C, spatial...] input, got [${x.dims}]`);
  return [toChannelsFirst(await fn(toChannelsLast(x)))];
}

// ---- elementwise ----

function unaryOp(op: UnaryOp, bounds?: (call: OpCall) => { lo?: number; hi?: number }): OpSpec {
  return {
    hostInputs: bounds ? [1, 2] : [],
    run: (call) => onEngine(call.rt, (up) => [[unary(op, up(call.inputs[0]!), bounds?.(call) ?? {}), call.inputs[0]!.dims]]),
  };
}

const clipBounds = (call: OpCall) =>
  call.opset < 11
    ? { lo: attrFloat(call.node, 'min', -3.4028234663852886e38), hi: attrFloat(call.node, 'max', 3.4028234663852886e38) }
    : { lo: scalar(call.inputs[1]), hi: scalar(call.inputs[2]) };

function binaryOp(op: BinaryOp): OpSpec {
  return {
    unsupported: (node, inputs, opset) => {
      // Opset < 7 broadcasting is axis-aligned (b's dims start at `axis`), not numpy's.
      if (opset < 7 && attrInt(node, 'broadcast', 0) === 1 && attr(node, 'axis') && inputs[0] && inputs[1]) {
        const axis = attrInt(node, 'axis', 0);
        const ra = inputs[0].dims.length;
        if ((axis < 0 ? axis + ra : axis) + inputs[1].dims.length > ra) return `legacy broadcast axis ${axis} does not fit`;
      }
      return null;
    },
    run: (call) => {
      const [a, b] = call.inputs as OnnxTensor[];
      let bShape = b.dims;
      if (call.opset < 7 && attrInt(call.node, 'broadcast', 0) === 1 && attr(call.node, 'axis')) {
        // Legacy axis-aligned broadcast: pad b's shape with trailing 1s so numpy's rule lines it up.
        const ra = a.dims.length;
        const axis = attrInt(call.node, 'axis', 0);
        const start = axis < 0 ? axis + ra : axis;
        bShape = [...b.dims, ...new Array(ra - start - b.dims.length).fill(1)];
      }
      return onEngine(call.rt, (up) => {
        const y = binary(op, up(a), up(b, bShape));
        return [[y, [...y.shape]]];
      });
    },
  };
}

// ---- softmax, reduce ----

function softmaxOp(log: boolean): OpSpec {
  return {
    run: (call) => {
      const x = call.inputs[0]!;
      const r = x.dims.length;
      const rawAxis = attrInt(call.node, 'axis', call.opset < 13 ? 1 : -1);
      const axis = rawAxis < 0 ? rawAxis + r : rawAxis;
      // Before opset 13 the input is coerced to 2-D [prod(dims < axis), prod(dims >= axis)].
      const shape =
        call.opset < 13 ? [x.dims.slice(0, axis).reduce((p, d) => p * d, 1), x.dims.slice(axis).reduce((p, d) => p * d, 1)] : x.dims;
      return onEngine(call.rt, (up) => [[softmax(up(x, shape), { axis: call.opset < 13 ? 1 : axis, log }), x.dims]]);
    },
  };
}

function reduceOp(op: ReduceOp): OpSpec {
  return {
    hostInputs: [1],
    run: (call) => {
      // Axes moved from an attribute to an input at opset 18 (ReduceMean) / 13 (ReduceSum).
      const axesAsInput = call.opset >= (op === 'sum' ? 13 : 18);
      const axes = axesAsInput ? numbers(call.inputs[1]) : attrInts(call.node, 'axes');
      const keepdims = attrInt(call.node, 'keepdims', 1) === 1;
      const noopWithEmptyAxes = attrInt(call.node, 'noop_with_empty_axes', 0) === 1;
      return onEngine(call.rt, (up) => {
        const y = reduce(op, up(call.inputs[0]!), { axes, keepdims, noopWithEmptyAxes });
        return [[y, [...y.shape]]];
      });
    },
  };
}

// ---- shape ops (views of the same engine buffer) ----

function viewOp(hostInputs: number[], shapeOf: (call: OpCall, x: Tensor) => Tensor): OpSpec {
  return {
    hostInputs,
    run: (call) =>
      onEngine(call.rt, (up) => {
        const y = shapeOf(call, up(call.inputs[0]!));
        return [[y, [...y.shape]]];
      }),
  };
}

const reshapeOp = viewOp([1], (call, x) => {
  const spec = call.opset < 5 ? attrInts(call.node, 'shape') : numbers(call.inputs[1]);
  if (!spec) throw new Error('no target shape');
  return reshape(x, spec, attrInt(call.node, 'allowzero', 0) === 1);
});
const flattenOp = viewOp([], (call, x) => flatten(x, attrInt(call.node, 'axis', 1)));
const squeezeOp = viewOp([1], (call, x) =>
  squeeze(x, call.opset < 13 ? attrInts(call.node, 'axes') : numbers(call.inputs[1])),
);
const unsqueezeOp = viewOp([1], (call, x) => {
  const axes = call.opset < 13 ? attrInts(call.node, 'axes') : numbers(call.inputs[1]);
  if (!axes) throw new Error('no axes');
  return unsqueeze(x, axes);
});

const dropoutOp: OpSpec = {
  hostInputs: [1, 2],
  unsupported: (node, inputs, opset) => {
    // Training mode with a non-zero ratio draws a random mask (ONNX's expected outputs come from
    // numpy's np.random.seed(0)), which the engine's RNG cannot reproduce. Ratio 0 is the identity.
    let training: boolean;
    let ratio: number;
    if (opset >= 12) {
      if (node.inputs[2] && !inputs[2]) return null; // the flag is computed in the graph: decided when it runs
      training = (scalar(inputs[2]) ?? 0) !== 0;
      ratio = node.inputs[1] ? (scalar(inputs[1]) ?? NaN) : 0.5;
    } else {
      training = opset < 7 && attrInt(node, 'is_test', 0) === 0;
      ratio = attrFloat(node, 'ratio', 0.5);
    }
    if (!training || ratio === 0) return null;
    return `training-mode dropout (ratio ${ratio}) draws a random mask from numpy's RNG, which the engine cannot reproduce`;
  },
  run: (call) => onEngine(call.rt, (up) => [[dropout(up(call.inputs[0]!)), call.inputs[0]!.dims]]),
};

const concatOp: OpSpec = {
  run: (call) =>
    onEngine(call.rt, (up) => {
      const y = concat(
        call.inputs.map((t) => up(t!)),
        attrInt(call.node, 'axis', call.opset < 4 ? 1 : 0),
      );
      return [[y, [...y.shape]]];
    }),
};

// ---- pooling ----

/** ONNX auto_pad / pads for `k` spatial axes -> per-axis [begin, end] or a mode. */
function onnxPadding(node: OnnxNode, k: number): 'VALID' | 'SAME_UPPER' | 'SAME_LOWER' | [number, number][] {
  const auto = attrString(node, 'auto_pad', 'NOTSET');
  if (auto === 'VALID' || auto === 'SAME_UPPER' || auto === 'SAME_LOWER') return auto;
  if (auto !== 'NOTSET') throw new Error(`unknown auto_pad '${auto}'`);
  const pads = attrInts(node, 'pads') ?? new Array(2 * k).fill(0);
  if (pads.length !== 2 * k) throw new Error(`pads [${pads}] do not match ${k} spatial axes`);
  return Array.from({ length: k }, (_, i) => [pads[i], pads[i + k]]);
}

/**
 * The engine's 2-D window from an ONNX node's per-axis settings: ONNX axis `a` runs along H and
 * `b` along W; null makes that engine axis a unit one (kernel 1, stride 1, no padding).
 */
function window2d(
  kernel: number[],
  strides: number[],
  dilations: number[],
  pad: ReturnType<typeof onnxPadding>,
  a: number | null,
  b: number | null,
): Pick<PoolAttrs, 'kernel' | 'strides' | 'dilations' | 'padding'> {
  const pick = (v: number[], i: number | null) => (i === null ? 1 : v[i]);
  const side = (i: number | null, end: 0 | 1) => (i === null || typeof pad === 'string' ? 0 : pad[i][end]);
  const padding: Padding = typeof pad === 'string' ? pad : [side(a, 0), side(b, 0), side(a, 1), side(b, 1)];
  return {
    kernel: [pick(kernel, a), pick(kernel, b)],
    strides: [pick(strides, a), pick(strides, b)],
    dilations: [pick(dilations, a), pick(dilations, b)],
    padding,
  };
}

function poolOp(mode: PoolMode): OpSpec {
  return {
    unsupported: (node, inputs) => {
      const k = attrInts(node, 'kernel_shape')?.length ?? 0;
      if (k < 1 || k > 3) return `${k}-D pooling (the engine pools 1-, 2- and 3-D windows)`;
      if (inputs[0] && inputs[0].dims.length !== k + 2) return `input rank ${inputs[0].dims.length} vs ${k}-D kernel`;
      return null;
    },
    run: (call) =>
      spatial(call, async (x) => {
        const node = call.node;
        const kernel = attrInts(node, 'kernel_shape')!;
        const k = kernel.length;
        const strides = attrInts(node, 'strides') ?? new Array(k).fill(1);
        const dilations = attrInts(node, 'dilations') ?? new Array(k).fill(1);
        const pad = onnxPadding(node, k);
        const win = (a: number | null, b: number | null): PoolAttrs => ({
          ...window2d(kernel, strides, dilations, pad, a, b),
          ceilMode: attrInt(node, 'ceil_mode', 0) === 1,
          countIncludePad: mode === 'avg' && attrInt(node, 'count_include_pad', 0) === 1,
        });
        const [N, C] = [x.dims[0], x.dims[x.dims.length - 1]];
        const [y] = await onEngine(call.rt, (up, keep) => {
          if (k === 1) {
            // [N, L, C] pools along W of an [N, 1, L, C] view.
            const y = pool(mode, up(x, [N, 1, x.dims[1], C]), win(null, 0));
            return [[y, [N, y.shape[2], C]]];
          }
          if (k === 2) {
            const y = pool(mode, up(x), win(0, 1));
            return [[y, [...y.shape]]];
          }
          // 3-D: max and average are separable over a box window (the average's divisor is a
          // product of per-axis counts), so pool H x W in every depth slice, then pool along D.
          const [D, H, W] = x.dims.slice(1, 4);
          const hw = keep(pool(mode, up(x, [N * D, H, W, C]), win(1, 2)));
          const [OH, OW] = [hw.shape[1], hw.shape[2]];
          const y = pool(mode, hw.reshape([N, D, OH * OW, C]), win(0, null));
          return [[y, [N, y.shape[1], OH, OW, C]]];
        });
        return y;
      }),
  };
}

function globalPoolOp(mode: PoolMode): OpSpec {
  return {
    run: (call) =>
      spatial(call, async (x) => {
        const [N, C] = [x.dims[0], x.dims[x.dims.length - 1]];
        const S = x.dims.slice(1, -1).reduce((a, b) => a * b, 1);
        const [y] = await onEngine(call.rt, (up) => {
          const y = pool(mode, up(x, [N, S, 1, C]), { kernel: [S, 1] });
          return [[y, [N, ...x.dims.slice(1, -1).map(() => 1), C]]];
        });
        return y;
      }),
  };
}

// ---- convolution, batchnorm ----

const convOp: OpSpec = {
  unsupported: (node, inputs) => {
    const w = inputs[1];
    const k = attrInts(node, 'kernel_shape')?.length ?? (w ? w.dims.length - 2 : 2);
    return k === 1 || k === 2 ? null : `${k}-D convolution (the engine convolves 1- and 2-D windows)`;
  },
  run: (call) =>
    spatial(call, async (x) => {
      const node = call.node;
      const [w, b] = [call.inputs[1]!, call.inputs[2]];
      const k = w.dims.length - 2;
      const kernel = w.dims.slice(2);
      const strides = attrInts(node, 'strides') ?? new Array(k).fill(1);
      const dilations = attrInts(node, 'dilations') ?? new Array(k).fill(1);
      const win = k === 1 ? window2d(kernel, strides, dilations, onnxPadding(node, 1), null, 0) : window2d(kernel, strides, dilations, onnxPadding(node, 2), 0, 1);
      // OIHW [M, C/group, kH, kW] -> HWIO [kH, kW, C/group, M]; a 1-D filter gets a unit kH.
      const w4 = k === 1 ? f32([w.dims[0], w.dims[1], 1, w.dims[2]], w.data as Float32Array) : w;
      const hwio = transposeHost(w4.data as Float32Array, w4.dims, OIHW_TO_HWIO);
      const [N, C] = [x.dims[0], x.dims[x.dims.length - 1]];
      const [y] = await onEngine(call.rt, (up) => {
        const xin = k === 1 ? up(x, [N, 1, x.dims[1], C]) : up(x);
        const y = conv2d(
          xin,
          up(f32(hwio.shape, hwio.data, w.name)),
          { strides: win.strides as [number, number], dilations: win.dilations as [number, number], padding: win.padding, groups: attrInt(node, 'group', 1) },
          b ? { bias: up(b) } : {},
        );
        return [[y, k === 1 ? [N, y.shape[2], y.shape[3]] : [...y.shape]]];
      });
      return y;
    }),
};

const batchnormOp: OpSpec = {
  unsupported: (node, _inputs, opset) => {
    // Training mode before opset 14 has other outputs (saved mean and variance); no test uses it.
    const legacyTraining = opset < 7 ? attrInt(node, 'is_test', 0) === 0 : opset < 14 && node.outputs.length > 1;
    if (legacyTraining) return `training mode at opset ${opset} (outputs mean, var, saved_mean, saved_var) is not in the engine; opset 14+ training is`;
    if (opset < 9 && attrInt(node, 'spatial', 1) === 0) return 'spatial=0 (per-activation statistics) is not in the engine';
    return null;
  },
  run: (call) => {
    if (call.opset >= 14 && attrInt(call.node, 'training_mode', 0) === 1) return batchnormTraining(call);
    return spatial(call, async (x) => {
      const [, scale, bias, mean, variance] = call.inputs as OnnxTensor[];
      const [y] = await onEngine(call.rt, (up) => [
        [
          batchnorm(
            up(x),
            { gamma: up(scale), beta: up(bias), mean: up(mean), variance: up(variance) },
            { epsilon: attrFloat(call.node, 'epsilon', 1e-5) },
          ),
          x.dims,
        ],
      ]);
      return y;
    });
  },
};

/**
 * Training-mode BatchNormalization (opset 14+): Y from the batch mean and biased variance over all
 * axes but the channel, and running_* = input_* * momentum + batch_* * (1 - momentum), with the
 * biased batch variance (ONNX's np.var), i.e. the engine's decay = momentum and no Bessel factor.
 */
async function batchnormTraining(call: OpCall): Promise<OnnxTensor[]> {
  const [x, scale, bias, mean, variance] = call.inputs as OnnxTensor[];
  if (x.dims.length < 2) throw new Error(`needs an [N, C, spatial...] input, got [${x.dims}]`);
  const xl = toChannelsLast(x);
  const c = x.dims[1];
  const [y, runningMean, runningVar] = await onEngine(call.rt, (up, keep) => {
    const z = up(xl);
    // Fresh uploads: the kernel updates the moving statistics in place.
    const params = { gamma: up(scale, [c]), beta: up(bias, [c]), movingMean: up(mean, [c]), movingVariance: up(variance, [c]) };
    const out = {
      y: keep(empty(call.rt, z.shape, 'float32', 'BatchNormalization y')),
      mean: keep(empty(call.rt, [c])),
      rstd: keep(empty(call.rt, [c])),
      workspace: keep(empty(call.rt, batchnormTrainWorkspaceShape(z.shape))),
    };
    const attrs = { epsilon: attrFloat(call.node, 'epsilon', 1e-5), decay: attrFloat(call.node, 'momentum', 0.9), movingVarianceUnbiased: false };
    run(call.rt, batchnormTrainForwardDispatch(z, params, out, attrs));
    return [
      [out.y, xl.dims],
      [params.movingMean, mean.dims],
      [params.movingVariance, variance.dims],
    ];
  });
  return [toChannelsFirst(y), runningMean, runningVar];
}

// ---- losses ----

/** Class indices read on the host (int64 in ONNX) as the int32 labels the loss kernels take. */
function classLabels(t: OnnxTensor): Int32Array {
  const v = numbers(t)!;
  const bad = v.find((x) => !Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31);
  if (bad !== undefined) throw new Error(`target value ${bad} is not an int32 class index`);
  return Int32Array.from(v);
}

/**
 * SoftmaxCrossEntropyLoss (opset 12/13) and NegativeLogLikelihoodLoss (opset 12/13/22) on scores
 * [N, C, d1, ..., dk] with targets [N, d1, ..., dk]: the class axis moves last on the GPU
 * (transpose of [N, C, D] to [N, D, C]), then one loss dispatch with the class weights, ignore_index
 * and reduction. ONNX's 'mean' is sum(w_i l_i) / sum(w_i) with w_i = weight[target_i] (1 without
 * weights) and 0 for ignored targets, which is the kernel's 'weightedMean'; 'none' reports w_i l_i.
 * SCE's optional log_prob output is a log-softmax over axis 1.
 */
function lossOp(nll: boolean): OpSpec {
  return {
    hostInputs: [1], // target: class indices (int64), uploaded as int32
    unsupported: (_node, inputs) => {
      const x = inputs[0];
      return x && x.dims.length < 2 ? `input [${x.dims}] has no class axis (ONNX requires [N, C, ...])` : null;
    },
    run: (call) => {
      const [x, target, weight] = call.inputs;
      if (!x || !target) throw new Error('needs the scores and the target');
      const [n, c] = x.dims;
      const spatialDims = x.dims.slice(2);
      const d = spatialDims.reduce((a, b) => a * b, 1);
      const want = [n, ...spatialDims];
      if (target.dims.length !== want.length || target.dims.some((v, i) => v !== want[i])) {
        throw new Error(`target [${target.dims}] does not match scores [${x.dims}] (expected [${want}])`);
      }
      const reduction = attrString(call.node, 'reduction', 'mean');
      if (reduction !== 'none' && reduction !== 'sum' && reduction !== 'mean') throw new Error(`unknown reduction '${reduction}'`);
      const labels = classLabels(target);
      const ignoreIndex = attr(call.node, 'ignore_index') ? attrInt(call.node, 'ignore_index', 0) : undefined;
      const logProbWanted = !nll && (call.node.outputs[1] ?? '') !== '';
      return onEngine(call.rt, (up, keep) => {
        const xs = up(x);
        const rows = d === 1 ? xs.reshape([n, c]) : keep(transpose(xs.reshape([n, c, d]), [0, 2, 1]));
        const lab = keep(upload(call.rt, labels, [n * d], 'target'));
        const none = reduction === 'none';
        const out = none ? { losses: empty(call.rt, [n * d], 'float32', 'loss') } : { mean: empty(call.rt, [1], 'float32', 'loss') };
        const attrs = {
          classWeights: weight && up(weight, [c]),
          ignoreIndex,
          reduction: reduction === 'sum' ? ('sum' as const) : ('weightedMean' as const),
          weightedLosses: none,
        };
        run(call.rt, [(nll ? negativeLogLikelihoodDispatch : softmaxCrossEntropyDispatch)(rows, lab, out, attrs)]);
        const result: [Tensor, number[]][] = [[none ? out.losses! : out.mean!, none ? target.dims : []]];
        if (logProbWanted) result.push([softmax(xs, { axis: 1, log: true }), x.dims]);
        return result;
      });
    },
  };
}

/** Shape (opset 15 start/end): the input's dims as int64, read on the host. */
const shapeOp: OpSpec = {
  hostInputs: [0],
  run: async (call) => {
    const dims = call.inputs[0]!.dims;
    const r = dims.length;
    const clampAxis = (a: number) => Math.min(Math.max(a < 0 ? a + r : a, 0), r);
    const start = clampAxis(attrInt(call.node, 'start', 0));
    const end = clampAxis(attrInt(call.node, 'end', r));
    const v = dims.slice(start, Math.max(start, end));
    return [{ name: '', dtype: 'int64', dims: [v.length], data: BigInt64Array.from(v, (x) => BigInt(x)) }];
  },
};

// ---- matrix products ----

const gemmOp: OpSpec = {
  run: (call) => {
    const [a, b, c] = call.inputs;
    const node = call.node;
    return onEngine(call.rt, (up) => {
      const y = matmul(
        up(a!),
        up(b!),
        {
          transA: attrInt(node, 'transA', 0) === 1,
          transB: attrInt(node, 'transB', 0) === 1,
          alpha: attrFloat(node, 'alpha', 1),
          beta: attrFloat(node, 'beta', 1),
        },
        c ? up(c) : undefined,
      );
      return [[y, [...y.shape]]];
    });
  },
};

/** Repeats a host tensor along its size-1 dims (and new leading dims) to fill `to` (numpy broadcast_to). */
function broadcastHost(t: OnnxTensor, dims: number[], to: number[]): Float32Array {
  const src = t.data as Float32Array;
  const n = to.reduce((p, d) => p * d, 1);
  const padded = [...new Array(to.length - dims.length).fill(1), ...dims];
  const strides = padded.map((_, i) => (padded[i] === 1 ? 0 : padded.slice(i + 1).reduce((p, d) => p * d, 1)));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let rest = i;
    let off = 0;
    for (let d = to.length - 1; d >= 0; d--) {
      off += (rest % to[d]) * strides[d];
      rest = Math.floor(rest / to[d]);
    }
    out[i] = src[off];
  }
  return out;
}

/**
 * ONNX MatMul (numpy matmul): 1-D operands are promoted to a row / column and the unit dim dropped
 * afterwards; batch dims broadcast. The engine multiplies [B, M, K] x [B, K, N] (a batch of 1
 * broadcasts); other batch broadcasts are expanded on the host first.
 */
const matmulOp: OpSpec = {
  run: (call) => {
    const [a, b] = call.inputs as OnnxTensor[];
    const aDims = a.dims.length === 1 ? [1, a.dims[0]] : a.dims;
    const bDims = b.dims.length === 1 ? [b.dims[0], 1] : b.dims;
    const [M, K] = aDims.slice(-2);
    const N = bDims[bDims.length - 1];
    const aBatch = aDims.slice(0, -2);
    const bBatch = bDims.slice(0, -2);
    const batch = broadcastShapes(aBatch, bBatch, 'MatMul');
    const B = batch.reduce((p, d) => p * d, 1);
    const out = [...batch, ...(a.dims.length === 1 ? [] : [M]), ...(b.dims.length === 1 ? [] : [N])];
    const count = (d: number[]) => d.reduce((p, q) => p * q, 1);
    return onEngine(call.rt, (up) => {
      // An operand whose batch is all ones broadcasts by itself; otherwise it must cover the full batch.
      const operand = (t: OnnxTensor, dims: number[], own: number[], rows: number, cols: number) => {
        if (count(own) === 1) return up(t, [rows, cols]);
        if (count(own) === B) return up(t, [B, rows, cols]);
        return up(f32([B, rows, cols], broadcastHost(t, dims, [...batch, rows, cols]), t.name));
      };
      const y = matmul(operand(a, aDims, aBatch, M, K), operand(b, bDims, bBatch, K, N));
      return [[y, out]];
    });
  },
};

// ---- pad, transpose ----

const padOp: OpSpec = {
  hostInputs: [1, 2, 3],
  run: (call) => {
    const node = call.node;
    const legacy = call.opset < 11; // pads and value were attributes
    const pads = legacy ? (attrInts(node, 'pads') ?? attrInts(node, 'paddings')) : numbers(call.inputs[1]);
    if (!pads) throw new Error('no pads');
    const value = legacy ? attrFloat(node, 'value', 0) : (scalar(call.inputs[2]) ?? 0);
    const axes = legacy ? undefined : numbers(call.inputs[3]);
    const mode = attrString(node, 'mode', 'constant') as PadMode;
    return onEngine(call.rt, (up) => {
      const y = pad(up(call.inputs[0]!), { pads, mode, value, axes });
      return [[y, [...y.shape]]];
    });
  },
};

const transposeOp: OpSpec = {
  run: (call) =>
    onEngine(call.rt, (up) => {
      const y = transpose(up(call.inputs[0]!), attrInts(call.node, 'perm'));
      return [[y, [...y.shape]]];
    }),
};

// ---- constants ----

/** The value of a Constant node (value, value_float(s), value_int(s)). */
export function constantValue(node: OnnxNode): OnnxTensor {
  const a = node.attributes;
  if (a.value?.type === 'tensor') return a.value.value;
  if (a.value_float?.type === 'float') return f32([], Float32Array.of(a.value_float.value));
  if (a.value_floats?.type === 'floats') return f32([a.value_floats.value.length], Float32Array.from(a.value_floats.value));
  const int64 = (v: number[], dims: number[]): OnnxTensor => ({
    name: '',
    dtype: 'int64' as OnnxDType,
    dims,
    data: BigInt64Array.from(v, (x) => BigInt(x)),
  });
  if (a.value_int?.type === 'int') return int64([a.value_int.value], []);
  if (a.value_ints?.type === 'ints') return int64(a.value_ints.value, [a.value_ints.value.length]);
  throw new Error(`Constant: no supported value attribute (has ${Object.keys(a).join(', ') || 'none'})`);
}

const constantOp: OpSpec = {
  run: async (call) => [constantValue(call.node)],
};

// ---- the table ----

export const OPS: Record<string, OpSpec> = {
  Relu: unaryOp('relu'),
  Sigmoid: unaryOp('sigmoid'),
  Sqrt: unaryOp('sqrt'),
  Reciprocal: unaryOp('reciprocal'),
  Identity: unaryOp('identity'),
  Clip: unaryOp('clip', clipBounds),
  Add: binaryOp('add'),
  Sub: binaryOp('sub'),
  Mul: binaryOp('mul'),
  Div: binaryOp('div'),
  Softmax: softmaxOp(false),
  LogSoftmax: softmaxOp(true),
  ReduceMean: reduceOp('mean'),
  ReduceSum: reduceOp('sum'),
  Reshape: reshapeOp,
  Flatten: flattenOp,
  Squeeze: squeezeOp,
  Unsqueeze: unsqueezeOp,
  Dropout: dropoutOp,
  Concat: concatOp,
  MaxPool: poolOp('max'),
  AveragePool: poolOp('avg'),
  GlobalMaxPool: globalPoolOp('max'),
  GlobalAveragePool: globalPoolOp('avg'),
  Conv: convOp,
  BatchNormalization: batchnormOp,
  SoftmaxCrossEntropyLoss: lossOp(false),
  NegativeLogLikelihoodLoss: lossOp(true),
  Shape: shapeOp,
  Gemm: gemmOp,
  MatMul: matmulOp,
  Pad: padOp,
  Transpose: transposeOp,
  Constant: constantOp,
};
