// Folds inference batchnorm into a conv epilogue's per-channel scale and shift, on the GPU:
//   scale = gamma / sqrt(variance + epsilon),  shift = beta - mean * scale.
// Runs whenever the parameters it reads change (param_store.ts), so no program ever holds constants
// folded from old values and no parameter makes a round trip through the host.
override HAS_GAMMA: u32 = 1u;

struct Params { channels: u32, epsilon: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> variance: array<f32>;
@group(0) @binding(5) var<storage, read_write> scale: array<f32>;
@group(0) @binding(6) var<storage, read_write> shift: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.channels) { return; }
  var s = 1.0 / sqrt(variance[c] + p.epsilon);
  if (HAS_GAMMA == 1u) { s *= gamma[c]; }
  scale[c] = s;
  shift[c] = beta[c] - mean[c] * s;
}
