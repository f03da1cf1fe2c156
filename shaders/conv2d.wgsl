// 2-D convolution, NHWC x HWIO, as an implicit GEMM: rows = output pixels (n, oh, ow),
// columns = output channels, reduction = (kh, kw, ci). Fast path for groups == 1 and Co % 4 == 0.
//
// What lavapipe (llvmpipe's Vulkan driver) rewards, measured on a 2-core AVX-512 machine:
// - a subgroup is one SIMD register (8 lanes at 256 bits); arithmetic is 8-wide, but a storage
//   buffer load is a loop over the lanes with a bounds check, a scalar load and an insert per
//   component (Mesa 25.0's llvmpipe; no gathers). So loads, not FMAs, bound these kernels: a naive
//   one runs at 3-5 GFLOP/s on a 1024^3 matmul, and even this one spends more than half its time
//   on its loads (`npm run bench -- probe`: the same kernel without them runs 1.7-3.5x faster).
// - subgroupShuffle is a register shuffle. Each lane loads RPL input rows (vec4s of 4 input
//   channels) and the subgroup shares the R = SG * RPL rows by shuffles: per 4-deep reduction step
//   a lane does RPL + 4 vec4 loads for R x 4 vec4 FMAs, instead of R + 4 loads without subgroups.
//   More rows per subgroup means fewer weight loads per FMA: a 1024^3 matmul went 14 -> 22
//   GFLOP/s from R = 8 to R = 32 (conv2d.ts picks R per shape).
// - workgroup memory and barriers buy nothing on a CPU (all memory is cache) and barriers cost
//   coroutine switches, so there is no shared-memory tiling here.
// - fma() gains nothing: llvmpipe emits a vmulps and a vaddps for it, as for a * b + c
//   (scripts/lavapipe-asm.sh shows the generated code).
// - one subgroup per workgroup, and enough workgroups for both cores: conv2d.ts keeps R = 32
//   unless a layer would then have fewer than 16 workgroups (Mixed_7c's 8x8 maps). The backward
//   kernels (conv2d_grad_input.wgsl, conv2d_grad_filter.wgsl) follow the same rules and, on
//   Mixed_7's shapes, run at about 3/4 of this kernel's rate per FLOP (NOTES.md, issue 10 item 4).
// Without subgroups (SG = 1) each invocation loads its own R rows; same arithmetic.
{{ENABLE}}

const R: u32 = {{ROWS}}u;   // output pixels per subgroup
const SG: u32 = {{SG}}u;    // lanes per subgroup; 1 = no subgroups
const RPL: u32 = (R + SG - 1u) / SG; // rows each lane loads: lane l loads rows l, l + SG, ...
override WG: u32 = 64u;     // invocations per workgroup (a multiple of SG)
override ACT: u32 = 0u;     // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;
override HAS_SHIFT: bool = false;
override HAS_BIAS: bool = false;

{{include conv2d_params}}
@group(0) @binding(1) var<storage, read> x: array<{{X_T}}>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<{{Y_T}}>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> shift: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> bias: array<vec4<f32>>;

// The value of row r for all lanes: a shuffle from the lane that loaded it, or (SG = 1) this
// invocation's own load.
fn rowValue(mine: ptr<function, array<vec4<f32>, RPL>>, r: u32) -> vec4<f32> {
  {{ROW_VALUE}}
}

// 4 input channels [ci, ci + 4) of pixel (n, ih, iw), or zeros in the padding.
fn loadX(n: u32, ih: i32, iw: i32, ci: u32) -> vec4<f32> {
  if (ih < 0 || iw < 0 || u32(ih) >= p.H || u32(iw) >= p.W) { return vec4<f32>(); }
  let base = ((n * p.H + u32(ih)) * p.W + u32(iw)) * p.C + ci;
  {{LOAD_X}}
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let lane = li % SG;
  let sub = li / SG;
  let CO4 = p.CO / 4u;
  // columns: one vec4 of output channels per lane; rows: R pixels per subgroup.
  let col = wg.x * SG + lane;
  let colc = min(col, CO4 - 1u);
  let rowBlock = (wg.y + wg.z * nwg.y) * (WG / SG) + sub;
  let m0 = rowBlock * R;

  // The pixels this invocation loads: rows lane, lane + SG, ... of the block.
  var n: array<u32, RPL>;
  var oh0: array<i32, RPL>;
  var ow0: array<i32, RPL>;
  for (var j = 0u; j < RPL; j++) {
    let m = min(m0 + lane + j * SG, p.M - 1u);
    let ow = m % p.OW;
    let t = m / p.OW;
    n[j] = t / p.OH;
    oh0[j] = i32((t % p.OH) * p.SH) - i32(p.PT);
    ow0[j] = i32(ow * p.SW) - i32(p.PL);
  }

  var acc: array<vec4<f32>, R>;
  var mine: array<vec4<f32>, RPL>;
  for (var kh = 0u; kh < p.KH; kh++) {
    for (var kw = 0u; kw < p.KW; kw++) {
      let wrow = (kh * p.KW + kw) * p.C;
      for (var ci = 0u; ci < p.C; ci += 4u) {
        for (var j = 0u; j < RPL; j++) {
          mine[j] = loadX(n[j], oh0[j] + i32(kh * p.DH), ow0[j] + i32(kw * p.DW), ci);
        }
        // HWIO rows ci..ci+3 of this lane's 4 output channels; rows past C are zero-weighted
        // by the zero-filled x components, so clamp the index instead of branching.
        let b0 = w[min(wrow + ci, wrow + p.C - 1u) * CO4 + colc];
        let b1 = w[min(wrow + ci + 1u, wrow + p.C - 1u) * CO4 + colc];
        let b2 = w[min(wrow + ci + 2u, wrow + p.C - 1u) * CO4 + colc];
        let b3 = w[min(wrow + ci + 3u, wrow + p.C - 1u) * CO4 + colc];
        for (var r = 0u; r < R; r++) {
          let a = rowValue(&mine, r);
          acc[r] += b0 * a.x + b1 * a.y + b2 * a.z + b3 * a.w;
        }
      }
    }
  }

  if (col >= CO4) { return; }
  var s = vec4<f32>(1.0);
  var b = vec4<f32>(0.0);
  if (HAS_SCALE) { s = scale[col]; }
  if (HAS_SHIFT) { b = shift[col]; }
  if (HAS_BIAS) { b += bias[col]; }
  for (var r = 0u; r < R; r++) {
    let m = m0 + r;
    if (m >= p.M) { break; }
    var v = acc[r] * s + b;
    if (ACT == 1u) { v = max(v, vec4<f32>(0.0)); }
    if (ACT == 2u) { v = clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)); }
    let o = m * p.CTOT + p.COFF + col * 4u;
    {{STORE_Y}}
  }
}
