// Filter gradient of a 2-D convolution (groups == 1), split-K:
//   dw[kh, kw, ci, co] = sum over p = (n, oh, ow) of x[n, oh*SH + kh*DH - PT, ow*SW + kw*DW - PL, ci] * dy[p, co]
// a GEMM with rows k = (kh, kw, ci) (K = KH*KW*C), columns co, and reduction over the N*OH*OW
// output pixels. The reduction is cut into chunks of CHUNK pixels, one per workgroup z; each chunk
// writes its partial sums to out[z] (K x CO), and conv2d_grad_filter_sum.wgsl adds the chunks
// (with one chunk, out is dw itself).
//
// Lavapipe layout (see conv2d.wgsl): a lane owns a vec4 of output channels; a subgroup owns
// R = 4*SG*RPL rows. Per reduction step (one output pixel p, the same for every lane) a lane
// loads RPL vec4s of x, 4 consecutive rows each, and one vec4 of dy; the subgroup shares the
// x quads by shuffle, for R vec4 mul-adds per lane. The pixel walk (n, oh, ow) is uniform, so
// only the padding test differs between lanes. One subgroup per workgroup.
// Without subgroups (SG = 1) each invocation loads all RPL quads of the workgroup's rows itself;
// those loads are the same for every invocation of the workgroup.
{{ENABLE}}

const SG: u32 = {{SG}}u;   // lanes per subgroup; 1 = no subgroups
const WG: u32 = {{WG}}u;   // invocations per workgroup (columns): SG, or 8 without subgroups
const RPL: u32 = {{RPL}}u; // row quads each lane loads
const Q: u32 = SG * RPL;   // row quads per workgroup; quad s is loaded by lane s % SG
const U: u32 = {{PIXELS}}u; // output pixels per reduction step
override ACCUM: bool = false; // add into out (only when out is dw itself)

struct Params {
  N: u32, H: u32, W: u32, C: u32,      // x NHWC
  OH: u32, OW: u32, CO: u32, K: u32,   // dy spatial size and channels; K = KH*KW*C rows
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,
  DYS: u32, DYOFF: u32, P: u32, CHUNK: u32, // dy row stride/offset; P = N*OH*OW; pixels per chunk
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{X_T}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{DY_T}}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{OUT_T}}>;

// Rows of a quad: the tap offsets (kh*DH - PT, kw*DW - PL) and input channel of each of 4 rows.
struct Quad { oh: vec4<i32>, ow: vec4<i32>, ci: vec4<u32> }

// Quad s of the rows for pixel u of a step (loaded by lane s % SG into mine[u * RPL + s / SG]).
fn quadValue(mine: ptr<function, array<vec4<f32>, RPL * U>>, u: u32, s: u32) -> vec4<f32> {
  {{QUAD_VALUE}}
}

fn inside(ih: i32, iw: i32) -> bool {
  return ih >= 0 && iw >= 0 && u32(ih) < p.H && u32(iw) < p.W;
}

// x at the 4 rows of quad q for output pixel (n, ih0 = oh*SH, iw0 = ow*SW); zeros in the padding.
fn loadQuad(n: u32, ih0: i32, iw0: i32, q: Quad) -> vec4<f32> {
  let pix = n * p.H;
  {{LOAD_QUAD}}
}

// dy channels [co, co + 4) at element i (row start + offset + co).
fn loadDy(i: u32, co: u32) -> vec4<f32> {
  {{LOAD_DY}}
}

// Stores (or with ACCUM adds) the first `valid` components of v at elements o, o + 1, ...
fn store(o: u32, v: vec4<f32>, valid: u32) {
  {{STORE}}
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let CO4 = (p.CO + 3u) / 4u;
  let lane = {{LANE}}; // li with subgroups, else 0
  let col = wg.x * WG + li;
  let co = min(col, CO4 - 1u) * 4u;
  let k0 = wg.y * Q * 4u;
  let chunk = wg.z;

  // Decode this lane's rows; rows past K get a tap offset that is always in the padding.
  var quads: array<Quad, RPL>;
  for (var j = 0u; j < RPL; j++) {
    for (var e = 0u; e < 4u; e++) {
      let k = k0 + (lane + j * SG) * 4u + e;
      let ci = k % p.C;
      let t = k / p.C;
      let kw = t % p.KW;
      let kh = t / p.KW;
      quads[j].oh[e] = select(-0x40000000, i32(kh * p.DH) - i32(p.PT), k < p.K);
      quads[j].ow[e] = i32(kw * p.DW) - i32(p.PL);
      quads[j].ci[e] = ci;
    }
  }

  let pBegin = chunk * p.CHUNK;
  let pEnd = min(pBegin + p.CHUNK, p.P);
  var ow = pBegin % p.OW;
  let t = pBegin / p.OW;
  var oh = t % p.OH;
  var n = t / p.OH;
  var acc: array<vec4<f32>, Q * 4u>;
  var mine: array<vec4<f32>, RPL * U>;
  var b: array<vec4<f32>, U>;
  for (var px = pBegin; px < pEnd; px += U) {
    for (var u = 0u; u < U; u++) {
      // Past the chunk's end: dy zero, x loads kept in bounds.
      let live = px + u < pEnd;
      let ih0 = i32(oh * p.SH);
      let iw0 = i32(ow * p.SW);
      for (var j = 0u; j < RPL; j++) {
        mine[u * RPL + j] = loadQuad(min(n, p.N - 1u), ih0, iw0, quads[j]);
      }
      b[u] = select(vec4<f32>(), loadDy(min(px + u, p.P - 1u) * p.DYS + p.DYOFF + co, co), live);
      ow++;
      if (ow == p.OW) {
        ow = 0u;
        oh++;
        if (oh == p.OH) { oh = 0u; n++; }
      }
    }
    for (var s = 0u; s < Q; s++) {
      for (var u = 0u; u < U; u++) {
        let a = quadValue(&mine, u, s);
        let bu = b[u];
        acc[4u * s] += a.x * bu;
        acc[4u * s + 1u] += a.y * bu;
        acc[4u * s + 2u] += a.z * bu;
        acc[4u * s + 3u] += a.w * bu;
      }
    }
  }

  if (col >= CO4) { return; }
  let base = chunk * p.K * p.CO + co;
  for (var r = 0u; r < Q * 4u; r++) {
    let k = k0 + r;
    if (k >= p.K) { break; }
    let o = base + k * p.CO;
    let v = acc[r];
    store(o, v, p.CO - co);
  }
}
