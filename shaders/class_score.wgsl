// The logit of one class per example as a "loss", and its gradient (a one-hot row): the seed of
// the backward pass when saliency explains a class score rather than the training loss.
struct Params { n: u32, k: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> score: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.n * p.k) { return; }
  let row = i / p.k;
  let col = i % p.k;
  let label = labels[row];
  let hit = i32(col) == label;
  dlogits[i] = select(0.0, 1.0, hit);
  if (hit) { score[row] = logits[i]; }
}
