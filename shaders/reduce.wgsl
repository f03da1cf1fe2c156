// Sum over the reduced dims of each output, times `scale` (1 for sum, 1/count for mean); with
// MAX = 1 the largest value instead (ONNX ReduceMax; NaN wins as in numpy).
override MAX: u32 = 0u;

fn combine(acc: f32, v: f32) -> f32 {
  if (MAX == 0u) { return acc + v; }
  if (v != v || acc != acc) { return v + acc; } // NaN propagates
  return max(acc, v);
}
fn start() -> f32 {
  if (MAX == 0u) { return 0.0; }
  return -0x1.fffffep+127f; // the lowest f32 (WGSL has no -inf constant; an empty range gives this)
}
// Kept dims index the output (row-major, innermost in slot 7); reduced dims are walked per output.
// Per-dim arrays are right-aligned in 8 slots with shape 1 / stride 0 filling unused slots.
struct Params {
  outCount: u32, count: u32, keptRank: u32, redRank: u32,
  scale: f32, _p0: u32, _p1: u32, _p2: u32,
  keptShape: array<vec4u, 2>,
  keptStride: array<vec4u, 2>,
  redShape: array<vec4u, 2>,
  redStride: array<vec4u, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn at(a: array<vec4u, 2>, s: u32) -> u32 { return a[s >> 2u][s & 3u]; }

// Input offset of output element o's first reduced element.
fn keptOffset(o: u32) -> u32 {
  var off = 0u;
  var rem = o;
  for (var k = 0u; k < p.keptRank; k++) {
    let s = 7u - k;
    off += (rem % at(p.keptShape, s)) * at(p.keptStride, s);
    rem /= at(p.keptShape, s);
  }
  return off;
}

// Offset of reduced index r, walking reduced slots from `first` outward.
fn redOffset(r: u32, first: u32) -> u32 {
  var off = 0u;
  var rem = r;
  for (var k = first; k < p.redRank; k++) {
    let s = 7u - k;
    off += (rem % at(p.redShape, s)) * at(p.redStride, s);
    rem /= at(p.redShape, s);
  }
  return off;
}

@compute @workgroup_size(64)
fn outPerThread(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let o = (wg.y * nwg.x + wg.x) * 64u + li;
  if (o >= p.outCount) { return; }
  let base = keptOffset(o);
  // The innermost reduced dim is a plain strided loop; only the outer ones need div/mod.
  let innerLen = at(p.redShape, 7u);
  let innerStride = at(p.redStride, 7u);
  var outerCount = 0u;
  if (innerLen > 0u) { outerCount = p.count / innerLen; }
  var acc = start();
  for (var q = 0u; q < outerCount; q++) {
    let off = base + redOffset(q, 1u);
    for (var j = 0u; j < innerLen; j++) { acc = combine(acc, x[off + j * innerStride]); }
  }
  y[o] = acc * p.scale;
}

const GROUP: u32 = 256u;
var<workgroup> partial: array<f32, GROUP>;

@compute @workgroup_size(GROUP)
fn outPerGroup(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let o = wg.y * nwg.x + wg.x; // uniform across the workgroup, so the early return is too
  if (o >= p.outCount) { return; }
  let base = keptOffset(o);
  var acc = start();
  for (var r = li; r < p.count; r += GROUP) { acc = combine(acc, x[base + redOffset(r, 0u)]); }
  partial[li] = acc;
  workgroupBarrier();
  for (var s = GROUP / 2u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] = combine(partial[li], partial[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u) { y[o] = partial[0] * p.scale; }
}
