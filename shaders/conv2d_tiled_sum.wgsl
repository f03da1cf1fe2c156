// Second half of a split-K tiled GEMM (conv2d_tiled*.wgsl): out[r, c] (+)= epilogue(sum over
// splits s of part[s][r][c]), for an R x COLS result whose rows lie STRIDE elements apart in
// `out` starting at channel OFF. The forward conv applies its epilogue here (identical to
// conv2d.wgsl); the filter gradient has none and may accumulate. One invocation per element: the
// pass reads S * R * COLS floats once, a small fraction of the GEMM's time when it is needed.
override ACT: u32 = 0u;        // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;
override HAS_SHIFT: bool = false;
override HAS_BIAS: bool = false;
override ACCUM: bool = false;  // add into out instead of overwriting it

struct Params {
  R: u32, COLS: u32, S: u32, STRIDE: u32, // rows, columns, splits, row stride of out
  OFF: u32, _a: u32, _b: u32, _c: u32,    // first channel written in out
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> shift: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  let e = p.R * p.COLS;
  if (i >= e) { return; }
  var v = 0.0;
  for (var s = 0u; s < p.S; s++) { v += part[s * e + i]; }
  let c = i % p.COLS;
  if (HAS_SCALE) { v *= scale[c]; }
  var b = 0.0;
  if (HAS_SHIFT) { b = shift[c]; }
  if (HAS_BIAS) { b += bias[c]; }
  v += b;
  if (ACT == 1u) { v = max(v, 0.0); }
  if (ACT == 2u) { v = clamp(v, 0.0, 6.0); }
  let o = (i / p.COLS) * p.STRIDE + p.OFF + c;
  if (ACCUM) { out[o] += v; } else { out[o] = v; }
}
