// Elementwise binary ops with broadcasting. OP and MODE are override constants, so each
// (op, layout) pair is its own pipeline and the switches fold away.
override OP: u32 = 0u;   // 0 add, 1 sub, 2 mul, 3 div
override MODE: u32 = 0u; // 0 same shape, 1 b repeats (b[i % nb]), 2 a repeats (a[i % na]), 3 strided

// Per-dim arrays are right-aligned in 8 slots; `rank` dims are used, innermost in slot 7.
struct Params {
  n: u32, na: u32, nb: u32, rank: u32,
  shape: array<vec4u, 2>,
  aStride: array<vec4u, 2>,
  bStride: array<vec4u, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn apply(u: f32, v: f32) -> f32 {
  switch OP {
    case 0u: { return u + v; }
    case 1u: { return u - v; }
    case 2u: { return u * v; }
    default: { return u / v; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  var ia = i;
  var ib = i;
  if (MODE == 1u) {
    ib = i % p.nb;
  } else if (MODE == 2u) {
    ia = i % p.na;
  } else if (MODE == 3u) {
    ia = 0u;
    ib = 0u;
    var rem = i;
    for (var k = 0u; k < p.rank; k++) {
      let s = 7u - k;
      let dim = p.shape[s >> 2u][s & 3u];
      let c = rem % dim;
      rem = rem / dim;
      ia += c * p.aStride[s >> 2u][s & 3u];
      ib += c * p.bStride[s >> 2u][s & 3u];
    }
  }
  y[i] = apply(a[ia], b[ib]);
}
