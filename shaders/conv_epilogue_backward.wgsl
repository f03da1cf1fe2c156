// Backward of a fused conv epilogue y = act(z * scale + shift): dz = dy * act'(y) * scale, per
// element of an NHWC tensor whose dy and y may be channel slices of wider tensors.
override WG: u32 = 256u;
override ACT: u32 = 0u;   // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;

struct Params { total: u32, C: u32, dyStride: u32, dyOff: u32, yStride: u32, yOff: u32, accumulate: u32, _p: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + li;
  if (i >= p.total) { return; }
  let c = i % p.C;
  let row = i / p.C;
  var g = dy[row * p.dyStride + p.dyOff + c];
  let v = y[row * p.yStride + p.yOff + c];
  if (ACT == 1u && v <= 0.0) { g = 0.0; }
  if (ACT == 2u && (v <= 0.0 || v >= 6.0)) { g = 0.0; }
  if (HAS_SCALE) { g *= scale[c]; }
  if (p.accumulate != 0u) { g += dz[i]; }
  dz[i] = g;
}
