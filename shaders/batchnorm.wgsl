// Inference batchnorm along a channel axis: the tensor is [outer, channels, inner] and element i
// has channel (i / inner) % channels. HAS_GAMMA = 0 skips gamma (TF-Slim's scale=False).
override HAS_GAMMA: u32 = 1u;

struct Params { n: u32, channels: u32, inner: u32, epsilon: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> variance: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  let c = (i / p.inner) % p.channels;
  var s = 1.0 / sqrt(variance[c] + p.epsilon);
  if (HAS_GAMMA == 1u) { s *= gamma[c]; }
  y[i] = (x[i] - mean[c]) * s + beta[c];
}
