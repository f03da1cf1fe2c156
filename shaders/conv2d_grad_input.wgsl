// Input gradient of a 2-D convolution (groups == 1): dx = conv2d_transpose(dy, w), NHWC x HWIO.
// An implicit GEMM like conv2d.wgsl: rows = input pixels (n, ih, iw), columns = input channels
// (one vec4 per lane), reduction = (kh, kw, co).
//
// Stride bookkeeping: input row ih receives tap kh from output row oh = (ih + PT - kh*DH) / SH
// only when that division is exact. Rows are therefore grouped by phase (ih % SH, iw % SW): all
// pixels of one phase take the same taps, so a subgroup skips the other taps as a uniform branch
// instead of multiplying zeros (a stride-2 3x3 layer does 1/4 of the taps per pixel).
//
// What lavapipe rewards (see conv2d.wgsl): per-lane loads are the cost, arithmetic is 8-wide,
// no workgroup memory. Each lane loads the dy rows (a vec4 of 4 output channels) of ITS pixels;
// the subgroup shares the R rows by shuffle; per 4-deep reduction step a lane loads RPL dy vec4s
// and the 4 filter rows ci..ci+3 (vec4s over co) of its columns, for R x 4 vec4 mul-adds.
// One subgroup per workgroup, so every branch before the shuffles depends only on workgroup_id.
//
// Without subgroups, or with fewer input channels than lanes (the RGB stem), the workgroup's
// invocations instead take separate row blocks of one column (SG = 1): the filter loads are then
// the same for every invocation, and each invocation loads its own R dy rows.
{{ENABLE}}

const R: u32 = {{ROWS}}u;   // input pixels per row block
const SG: u32 = {{SG}}u;    // lanes sharing a row block by shuffle; 1 = each invocation its own block
const WG: u32 = {{WG}}u;    // invocations per workgroup: SG, or (SG = 1) row blocks per workgroup
const RPL: u32 = (R + SG - 1u) / SG; // rows each lane loads: lane l loads rows l, l + SG, ...
override ACCUM: bool = false; // add into dx instead of overwriting it

struct Params {
  N: u32, H: u32, W: u32, C: u32,      // dx (the forward input) NHWC
  OH: u32, OW: u32, CO: u32, BPP: u32, // dy spatial size and channels; row blocks per phase
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,  // dilations, top/left padding
  DYS: u32, DYOFF: u32, _a: u32, _b: u32, // dy row stride (channels) and channel offset
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<{{DY_T}}>;
@group(0) @binding(2) var<storage, read> w: array<{{W_T}}>;
@group(0) @binding(3) var<storage, read_write> dx: array<{{OUT_T}}>;

// The value of row r for all lanes: a shuffle from the lane that loaded it, or (SG = 1) this
// invocation's own load.
fn rowValue(mine: ptr<function, array<vec4<f32>, RPL>>, r: u32) -> vec4<f32> {
  {{ROW_VALUE}}
}

// dy channels [co, co + 4) of the dy row starting at element `base`; base < 0: outside dy, zeros.
fn loadDy(base: i32, co: u32) -> vec4<f32> {
  if (base < 0) { return vec4<f32>(); }
  let i = u32(base) + co;
  {{LOAD_DY}}
}

// Filter row `row` (= (kh*KW + kw)*C + ci of HWIO), output channels [co, co + 4).
fn loadW(row: u32, co: u32) -> vec4<f32> {
  let i = row * p.CO + co;
  {{LOAD_W}}
}

// Stores (or with ACCUM adds) the first `valid` components of v at elements o, o + 1, ...
fn store(o: u32, v: vec4<f32>, valid: u32) {
  {{STORE}}
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let C4 = (p.C + 3u) / 4u;
  let lane = {{LANE}};               // li with subgroups, else 0
  let col = {{COL}};                 // wg.x * SG + li with subgroups, else wg.x
  let ci = min(col, C4 - 1u) * 4u;
  let block = (wg.y + wg.z * nwg.y) * (WG / SG) + {{SUB}}; // + 0 with subgroups, else + li
  let phase = block / p.BPP;
  let ph = phase / p.SW;
  let pw = phase % p.SW;
  if (ph >= min(p.SH, p.H) || pw >= p.W) { return; }
  // Pixels of this phase: ih = ihq * SH + ph, iw = iwq * SW + pw.
  let HQ = (p.H - ph + p.SH - 1u) / p.SH;
  let WQ = (p.W - pw + p.SW - 1u) / p.SW;
  let MP = p.N * HQ * WQ;
  let m0 = (block % p.BPP) * R;
  if (m0 >= MP) { return; }

  var n: array<u32, RPL>;
  var ihq: array<i32, RPL>;
  var iwq: array<i32, RPL>;
  for (var j = 0u; j < RPL; j++) {
    let m = min(m0 + lane + j * SG, MP - 1u);
    iwq[j] = i32(m % WQ);
    let t = m / WQ;
    ihq[j] = i32(t % HQ);
    n[j] = t / HQ;
  }

  var acc: array<vec4<f32>, R>;
  var mine: array<vec4<f32>, RPL>;
  var base: array<i32, RPL>;
  let SHi = i32(p.SH);
  let SWi = i32(p.SW);
  for (var kh = 0u; kh < p.KH; kh++) {
    let offH = i32(ph + p.PT) - i32(kh * p.DH);
    if (offH % SHi != 0) { continue; }   // this phase never meets tap kh
    let dh = offH / SHi;                 // oh = ihq + dh
    for (var kw = 0u; kw < p.KW; kw++) {
      let offW = i32(pw + p.PL) - i32(kw * p.DW);
      if (offW % SWi != 0) { continue; }
      let dw = offW / SWi;
      for (var j = 0u; j < RPL; j++) {
        let oh = ihq[j] + dh;
        let ow = iwq[j] + dw;
        let inside = oh >= 0 && ow >= 0 && u32(oh) < p.OH && u32(ow) < p.OW;
        base[j] = select(-1, i32(((n[j] * p.OH + u32(oh)) * p.OW + u32(ow)) * p.DYS + p.DYOFF), inside);
      }
      let wrow = (kh * p.KW + kw) * p.C;
      let wlast = wrow + p.C - 1u;
      for (var co = 0u; co < p.CO; co += 4u) {
        for (var j = 0u; j < RPL; j++) {
          mine[j] = loadDy(base[j], co);
        }
        // Rows ci..ci+3 of the filter (one per input channel), 4 output channels each; columns
        // past C are computed from a clamped row and never written.
        let b0 = loadW(min(wrow + ci, wlast), co);
        let b1 = loadW(min(wrow + ci + 1u, wlast), co);
        let b2 = loadW(min(wrow + ci + 2u, wlast), co);
        let b3 = loadW(min(wrow + ci + 3u, wlast), co);
        // t_k: the weights from output channel co + k to this lane's 4 input channels.
        let t0 = vec4<f32>(b0.x, b1.x, b2.x, b3.x);
        let t1 = vec4<f32>(b0.y, b1.y, b2.y, b3.y);
        let t2 = vec4<f32>(b0.z, b1.z, b2.z, b3.z);
        let t3 = vec4<f32>(b0.w, b1.w, b2.w, b3.w);
        for (var r = 0u; r < R; r++) {
          let a = rowValue(&mine, r);
          acc[r] += t0 * a.x + t1 * a.y + t2 * a.z + t3 * a.w;
        }
      }
    }
  }

  if (col >= C4) { return; }
  for (var r = 0u; r < R; r++) {
    let m = m0 + r;
    if (m >= MP) { break; }
    let iw = (m % WQ) * p.SW + pw;
    let t = m / WQ;
    let ih = (t % HQ) * p.SH + ph;
    let o = (((t / HQ) * p.H + ih) * p.W + iw) * p.C + ci;
    let v = acc[r];
    store(o, v, p.C - ci);
  }
}
