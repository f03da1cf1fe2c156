// Filter gradient of a 2-D convolution (groups == 1) as a tiled GEMM for GPUs:
// dw[(kh, kw, ci), co] = sum over output pixels q of x-tap(q; kh, kw, ci) * dy[q, co].
// Tiles, staging and occupancy as in conv2d_tiled.wgsl (read its header); what differs:
// - GEMM: rows = filter rows (kh, kw, ci) (KR = KH*KW*C), columns = output channels, reduction
//   = output pixels. Both operands arrive with the reduction as their outer axis: A quads are
//   4 consecutive filter rows of one pixel (x channels ci..ci+3, a vec4 when C % 4 == 0) and B
//   quads 4 output channels of one pixel (a vec4 of dy), so both are stored straight into the
//   k-major staging with no transposition.
// - Split-K over pixels: the reduction is long (N*OH*OW, 22k at Conv2d_1a) and the output small
//   (27 x 32 at Conv2d_1a: one tile), so workgroup z sums pixels [z * KCHUNK, (z + 1) * KCHUNK)
//   into its slice of a scratch buffer and conv2d_tiled_sum.wgsl adds the slices into dw.
//   With one split the kernel writes dw directly (ACCUM adds).
// - dy may be a channel slice (rows DYS apart, channels from DYOFF).
{{include tiled_gemm}}
const AS_ROW: u32 = BM / 4u;           // vec4s per staged k-row of A
const BS_ROW: u32 = BN / 4u;           // vec4s per staged k-row of B
const A_LOADS: u32 = BK * AS_ROW / NT; // A quads each invocation loads per step
const B_LOADS: u32 = BK * BS_ROW / NT; // B quads each invocation loads per step
override ACCUM: bool = false;          // add into the output instead of overwriting it

struct Params {
  N: u32, H: u32, W: u32, C: u32,      // x NHWC
  OH: u32, OW: u32, CO: u32, KR: u32,  // dy spatial size and channels; filter rows KH*KW*C
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,  // dilations, top/left padding
  DYS: u32, DYOFF: u32, P: u32, KCHUNK: u32, // dy row stride, channel offset; pixels, per split
  COLT: u32, TILES: u32, _a: u32, _b: u32,   // column tiles, all tiles
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{X_T}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{DY_T}}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{OUT_T}}>;


// Element index in x of tap (kh, kw), channel ci at output pixel pix = (n, oh, ow); -1 in the padding.
fn xAt(pix: vec3u, kh: u32, kw: u32, ci: u32) -> i32 {
  let ih = i32(pix.y * p.SH + kh * p.DH) - i32(p.PT);
  let iw = i32(pix.z * p.SW + kw * p.DW) - i32(p.PL);
  if (ih < 0 || iw < 0 || u32(ih) >= p.H || u32(iw) >= p.W) { return -1; }
  return i32(((pix.x * p.H + u32(ih)) * p.W + u32(iw)) * p.C + ci);
}

// Filter row r decomposed (the scalar path's per-element form); -1 past the filter rows.
fn xIndex(pix: vec3u, r: u32) -> i32 {
  if (r >= p.KR) { return -1; }
  let tap = r / p.C;
  return xAt(pix, tap / p.KW, tap % p.KW, r % p.C);
}

// x of filter rows r..r+3 at pixel pix (zeros unless inRange); when C % 4 == 0 these are tap
// (kh, kw) and channels ci..ci+3 (the vec4 path uses those).
fn loadA(pix: vec3u, inRange: bool, r: u32, kh: u32, kw: u32, ci: u32) -> vec4<f32> {
  {{LOAD_A}}
}

// dy channels co..co+3 at pixel q (co < CO).
fn loadB(q: u32, co: u32, qEnd: u32) -> vec4<f32> {
  if (q >= qEnd) { return vec4<f32>(); }
  let i = q * p.DYS + p.DYOFF + co;
  {{LOAD_B}}
}

// Stores (or with ACCUM adds) the first `valid` channels of v at element o of out.
fn store(o: u32, v: vec4<f32>, valid: u32) {
  {{STORE}}
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let tile = wg.x + wg.y * nwg.x;
  if (tile >= p.TILES) { return; } // whole workgroups only: barriers stay uniform
  let m0 = (tile / p.COLT) * BM;
  let n0 = (tile % p.COLT) * BN;
  let qBegin = wg.z * p.KCHUNK;
  let qEnd = min(p.P, qBegin + p.KCHUNK);
  let tx = li % TXN;
  let ty = li / TXN;
  // Every A quad of this invocation covers filter rows r..r+3 (NT is a multiple of AS_ROW), so
  // its tap is fixed; its pixels advance by BK per step without integer divisions.
  let r = m0 + (li % AS_ROW) * 4u;
  let rtap = (min(r, p.KR - 1u)) / p.C;
  let kh = rtap / p.KW;
  let kw = rtap % p.KW;
  let ci = r % p.C;
  var apix: array<vec3u, A_LOADS>; // (n, oh, ow) of each A slot's pixel
  for (var s = 0u; s < A_LOADS; s++) {
    let q = qBegin + (li + s * NT) / AS_ROW;
    apix[s] = vec3u(q / p.OW / p.OH, (q / p.OW) % p.OH, q % p.OW);
  }
  for (var q0 = qBegin; q0 < qEnd; q0 += BK) {
    for (var s = 0u; s < A_LOADS; s++) {
      let idx = li + s * NT;
      As[idx] = loadA(apix[s], q0 + idx / AS_ROW < qEnd, r, kh, kw, ci);
      apix[s].z += BK;
      while (apix[s].z >= p.OW) {
        apix[s].z -= p.OW;
        apix[s].y += 1u;
        if (apix[s].y == p.OH) { apix[s].y = 0u; apix[s].x += 1u; }
      }
    }
    for (var s = 0u; s < B_LOADS; s++) {
      let idx = li + s * NT;
      let co = n0 + (idx % BS_ROW) * 4u;
      var v = vec4<f32>();
      if (co < p.CO) { v = loadB(q0 + idx / BS_ROW, co, qEnd); }
      Bs[idx] = v;
    }
    workgroupBarrier();
    multiplyStaged(tx, ty);
    workgroupBarrier();
  }

  for (var r = 0u; r < TM; r++) {
    let row = m0 + ty * TM + r;
    if (row >= p.KR) { break; }
    for (var q = 0u; q < TN / 4u; q++) {
      let c = n0 + tx * TN + q * 4u;
      if (c >= p.CO) { break; }
      store((wg.z * p.KR + row) * p.CO + c, acc[r * (TN / 4u) + q], min(p.CO - c, 4u));
    }
  }
}
