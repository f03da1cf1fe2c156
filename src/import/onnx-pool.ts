// ONNX MaxPool / AveragePool over 1, 2 or 3 spatial axes on the engine's 2-D pooling. 1-D pools
// along W of an [N, C, 1, L] map; 3-D pools H x W in every depth slice and then along D (max and
// average are separable over a box window: the average's divisor is a product of per-axis counts).
import type { Padding } from '../kernels/padding.ts';
import { ImportError, NHWC, SAME, int, ints, str } from './onnx-common.ts';
import type { OnnxImporter } from './onnx-model.ts';
import type { OnnxNode } from './onnx-proto.ts';

type PoolOp = 'maxpool' | 'avgpool';

/** Per-axis window settings of the ONNX node. */
interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  auto: 'VALID' | 'SAME_UPPER' | 'SAME_LOWER' | null;
  begin: number[];
  end: number[];
}

function windowOf(node: OnnxNode): Window {
  const kernel = ints(node, 'kernel_shape');
  if (!kernel || kernel.length < 1 || kernel.length > 3) throw new ImportError(`${kernel?.length ?? 0}-D pooling is not supported (1-, 2- and 3-D)`);
  const k = kernel.length;
  const auto = str(node, 'auto_pad', 'NOTSET');
  if (auto !== 'NOTSET' && auto !== 'VALID' && auto !== 'SAME_UPPER' && auto !== 'SAME_LOWER') throw new ImportError(`auto_pad '${auto}' is not supported`);
  const pads = ints(node, 'pads') ?? new Array(2 * k).fill(0);
  if (pads.length !== 2 * k) throw new ImportError(`pads [${pads}] do not match a ${k}-D kernel`);
  return {
    kernel,
    strides: ints(node, 'strides') ?? new Array(k).fill(1),
    dilations: ints(node, 'dilations') ?? new Array(k).fill(1),
    auto: auto === 'NOTSET' ? null : auto,
    begin: pads.slice(0, k),
    end: pads.slice(k),
  };
}

/** The engine's 2-D attrs from ONNX axes a (along H) and b (along W); null is a unit axis. */
function attrs2d(node: OnnxNode, op: PoolOp, w: Window, a: number | null, b: number | null) {
  const pick = (v: number[], i: number | null) => (i === null ? 1 : v[i]);
  const pad = (v: number[], i: number | null) => (i === null ? 0 : v[i]);
  const padding: Padding = w.auto ?? [pad(w.begin, a), pad(w.begin, b), pad(w.end, a), pad(w.end, b)];
  return {
    kernel: [pick(w.kernel, a), pick(w.kernel, b)] as [number, number],
    strides: [pick(w.strides, a), pick(w.strides, b)] as [number, number],
    dilations: [pick(w.dilations, a), pick(w.dilations, b)] as [number, number],
    padding,
    ceilMode: int(node, 'ceil_mode', 0) === 1,
    ...(op === 'avgpool' ? { countIncludePad: int(node, 'count_include_pad', 0) === 1 } : {}),
  };
}

export function poolNd(im: OnnxImporter, node: OnnxNode, out: string, op: PoolOp): void {
  const w = windowOf(node);
  const rank = im.value(node.inputs[0]).onnx.length;
  if (rank !== w.kernel.length + 2) throw new ImportError(`input rank ${rank} does not match a ${w.kernel.length}-D kernel`);
  if (w.kernel.length === 2) {
    const x = im.spatial(node.inputs[0]);
    im.g.addNode(out, op, [x.ir], attrs2d(node, op, w, 0, 1));
    const s = im.g.shapeOf(out);
    return im.set(out, out, NHWC, [s[0], s[3], s[1], s[2]]);
  }
  if (w.kernel.length === 1) return pool1d(im, node, out, op, w);
  pool3d(im, node, out, op, w);
}

function pool1d(im: OnnxImporter, node: OnnxNode, out: string, op: PoolOp, w: Window): void {
  const x = im.toSame(node.inputs[0]);
  const [n, c, l] = x.onnx;
  const map = im.inner(out, 'map');
  im.g.addNode(map, 'reshape', [x.ir], { shape: [n, c, 1, l] });
  im.set(map, map, SAME, [n, c, 1, l]);
  const pooled = im.inner(out, 'pool');
  im.g.addNode(pooled, op, [im.spatial(map).ir], attrs2d(node, op, w, null, 0));
  const ol = im.g.shapeOf(pooled)[2];
  im.set(pooled, pooled, NHWC, [n, c, 1, ol]);
  im.g.addNode(out, 'reshape', [im.toSame(pooled).ir], { shape: [n, c, ol] });
  im.set(out, out, SAME, [n, c, ol]);
}

function pool3d(im: OnnxImporter, node: OnnxNode, out: string, op: PoolOp, w: Window): void {
  const x = im.toSame(node.inputs[0]);
  const [n, c, d, h, wd] = x.onnx;
  const last = im.g.addNode(im.inner(out, 'ndhwc'), 'transpose', [x.ir], { perm: [0, 2, 3, 4, 1] });
  const slices = im.g.addNode(im.inner(out, 'slices'), 'reshape', [last.output], { shape: [n * d, h, wd, c] });
  const hw = im.g.addNode(im.inner(out, 'pool_hw'), op, [slices.output], attrs2d(node, op, w, 1, 2));
  const [, oh, ow] = hw.shape;
  const cols = im.g.addNode(im.inner(out, 'columns'), 'reshape', [hw.output], { shape: [n, d, oh * ow, c] });
  const dd = im.g.addNode(im.inner(out, 'pool_d'), op, [cols.output], attrs2d(node, op, w, 0, null));
  const od = dd.shape[1];
  const back = im.g.addNode(im.inner(out, 'odhwc'), 'reshape', [dd.output], { shape: [n, od, oh, ow, c] });
  im.g.addNode(out, 'transpose', [back.output], { perm: [0, 4, 1, 2, 3] });
  im.set(out, out, SAME, [n, c, od, oh, ow]);
}
