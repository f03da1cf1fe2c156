{{ENABLE}}
// 2-D convolution, NHWC x HWIO, as an implicit GEMM for CPU drivers (lavapipe), with rows and
// columns fully unrolled by the template: rows = output pixels (n, oh, ow), columns = output
// channels, reduction k = (kh, kw, ci). One workgroup = one 8-lane SIMD register (LANES); lanes run
// over output-channel columns (COLS per lane, LANES apart; CV = 1 channel or a vec4 of 4), the
// workgroup keeps R output pixels, and every accumulator is its own variable.
//
// {{HEADER}}
//
// Two ways for a row's input to reach the lanes (src/kernels/conv2d_bcast.ts, BcastTiling.load):
// - 'uniform': every lane loads the same address (it depends only on workgroup_id and loop
//   counters). The hope was one scalar load + broadcast. Measured on Mesa 25.0.7's llvmpipe it is
//   the slowest load there is: the same kernel ran 1.4-2.4x FASTER once the address was made
//   lane-dependent in the compiler's eyes (+ lane * 0 from a uniform), and 2-14x slower than
//   conv2d.wgsl overall (8 rows x 2 columns). llvmpipe of this age scalarises only addresses built
//   from constants and push constants; a uniform address inside a loop takes a per-lane path.
// - 'lane': lane l loads rows l, l + 8, ... (one gather per 8 rows) and subgroupBroadcast with a
//   constant lane hands each row to all lanes (an extract + splat: measured free).
// What limits it then (NOTES.md, "Lavapipe kernels: what limits them"): per-lane loads cost per
// load instruction, so vec4 loads of weights (CV = 4) beat 4 scalar ones; the multiply-adds
// themselves, with R * COLS * CV accumulators past the 32 ymm registers spilled. With 'lane' and
// vec4 columns this is conv2d.wgsl's design made explicit; it sits level with it per shape.
const R: u32 = {{ROWS}}u;       // output pixels per workgroup
const COLS: u32 = {{COLS}}u;    // output channels per lane
const LANES: u32 = {{LANES}}u;  // invocations per workgroup (the SIMD width)
const KV: u32 = {{KV}}u;        // input channels per step: 4 (x read as vec4) or 1
const CV: u32 = {{CV}}u;        // output channels per column: 4 (w read as vec4) or 1
override ACT: u32 = 0u;         // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;
override HAS_SHIFT: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false; // y += result (the input gradient accumulating into dx)

{{include conv2d_params}}
@group(0) @binding(1) var<storage, read> x: array<{{X_T}}>;
@group(0) @binding(2) var<storage, read> w: array<{{W_T}}>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> shift: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let mb = (wg.y + wg.z * nwg.y) * R;
  let c0 = wg.x * (LANES * COLS) + lane; // in columns of CV channels
  let NCOL = p.CO / CV;
  // Every per-row value below is a separate variable (the template unrolls rows and columns):
  // a private array indexed in a loop that the compiler does not unroll lives in memory, and in
  // llvmpipe's SoA model each access then becomes a per-lane gather/scatter.
  // Each row's pixel is uniform across the workgroup (rows past M repeat the last one); columns
  // past CO read column CO - 1 (a valid address) and are not stored.
  {{SETUP}}
  for (var kh = 0u; kh < p.KH; kh++) {
    for (var kw = 0u; kw < p.KW; kw++) {
      // Hoisted out of the channel loop: each row's input pixel for this tap, and whether it
      // lies inside the image (outside: padding, read as zeros).
      {{TAP}}
      var wi = (kh * p.KW + kw) * p.C * NCOL;
      for (var ci = 0u; ci < p.C; ci += KV) {
        {{STEP}}
      }
    }
  }
  // The epilogue, rolled up: the accumulators go to one array so that the stores are one loop
  // (unrolled, R * COLS * CV inlined epilogues made LLVM take minutes per pipeline).
  var res: array<{{ACC_T}}, R * COLS>;
  {{STORE}}
  for (var j = 0u; j < COLS; j++) {
    for (var k = 0u; k < CV; k++) {
      let co = (c0 + j * LANES) * CV + k;
      if (co >= p.CO) { break; }
      var s = 1.0;
      var b = 0.0;
      if (HAS_SCALE) { s = scale[co]; }
      if (HAS_SHIFT) { b = shift[co]; }
      if (HAS_BIAS) { b += bias[co]; }
      for (var r = 0u; r < R; r++) {
        let m = mb + r;
        if (m >= p.M) { break; }
        var v = {{RES_K}} * s + b;
        if (ACT == 1u) { v = max(v, 0.0); }
        if (ACT == 2u) { v = clamp(v, 0.0, 6.0); }
        let o = m * p.CTOT + p.COFF + co;
        if (ACCUMULATE) { v += y[o]; }
        y[o] = v;
      }
    }
  }
}
