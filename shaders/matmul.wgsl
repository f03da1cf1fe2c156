// General (batched) matrix product with transposes and a broadcast addend:
// out[b] = alpha * op(A[b]) op(B[b]) + beta * C. One output element per invocation; the 2-D,
// untransposed case with N % 4 == 0 takes the implicit-GEMM path of conv2d instead.
override WG: u32 = 64u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_C: bool = false;

struct Params {
  M: u32, N: u32, K: u32, TOTAL: u32,
  A_BATCH: u32, B_BATCH: u32, C_ROW: u32, C_COL: u32, // batch strides (0 = broadcast); C strides
  alpha: f32, beta: f32, _a: u32, _b: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + li;
  if (i >= p.TOTAL) { return; }
  let n = i % p.N;
  let m = (i / p.N) % p.M;
  let bt = i / (p.N * p.M);
  let a0 = bt * p.A_BATCH;
  let b0 = bt * p.B_BATCH;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    var av: f32;
    var bv: f32;
    if (TRANS_A) { av = a[a0 + k * p.M + m]; } else { av = a[a0 + m * p.K + k]; }
    if (TRANS_B) { bv = b[b0 + n * p.K + k]; } else { bv = b[b0 + k * p.N + n]; }
    acc += av * bv;
  }
  var v = p.alpha * acc;
  if (HAS_C) { v += p.beta * c[m * p.C_ROW + n * p.C_COL]; }
  y[i] = v;
}
