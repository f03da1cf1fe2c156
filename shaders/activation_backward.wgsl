// Activation backward from the forward OUTPUT y: dx = dy * f'(y). dy and y may be channel slices
// of wider NHWC tensors (a Mixed block's concat output and its gradient): row r, channel k of the
// logical [rows, c] view sits at r * stride + offset + k. All sizes are in units of V, which is
// vec4<f32> when every channel count, offset and stride is a multiple of 4 (one 16-byte load per
// invocation instead of four scalar ones; lavapipe pays per load, not per lane-element), else f32.
alias V = {{V}};
override ACT: u32 = 1u;           // src/kernels/activation.ts: 1 relu, 2 relu6, 3 sigmoid
override ACCUMULATE: bool = false; // dx += ... (a value with several consumers sums their gradients)

struct Params {
  n: u32, c: u32, dyStride: u32, dyOff: u32,
  yStride: u32, yOff: u32, dxStride: u32, dxOff: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<V>;
@group(0) @binding(2) var<storage, read> y: array<V>;
@group(0) @binding(3) var<storage, read_write> dx: array<V>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  let r = i / p.c;
  let k = i % p.c;
  let g = dy[r * p.dyStride + p.dyOff + k];
  let v = y[r * p.yStride + p.yOff + k];
  var d: V;
  switch ACT {
    case 1u: { d = select(V(0.0), g, v > V(0.0)); }
    case 2u: { d = select(V(0.0), g, (v > V(0.0)) & (v < V(6.0))); }
    default: { d = g * v * (V(1.0) - v); }
  }
  let o = r * p.dxStride + p.dxOff + k;
  if (ACCUMULATE) { dx[o] += d; } else { dx[o] = d; }
}
