// Dropout in training mode with a counter-based RNG: element i of step s keeps its value (scaled
// by 1 / keepProb) iff u(seed, s, i) < keepProb, u uniform in [0, 1). Nothing is stored between
// forward and backward: the backward regenerates the same mask from (seed, step, index).
//
// RNG: the PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020: one LCG
// step then PCG's RXS-M-XS output permutation, a bijection on u32). The key chains seed, stream
// (which dropout layer: two layers in one step must not share a mask) and step; the index is
// hashed in two keyed rounds so that no key's sequence is an index shift of another's:
//   key = pcg(pcg(pcg(seed) ^ stream) ^ step),  h = pcg(pcg(i + key) ^ pcg(key + 1)),  u = (h >> 8) / 2^24.
// The 24 high bits make u exact in f32, so the CPU reference reproduces every mask bit.
override ACCUMULATE: bool = false;  // dst += ... (backward into a gradient with several consumers)
override HAS_STEP_TENSOR: bool = false;

struct Params { n: u32, seed: u32, step: u32, stepIndex: u32, keep: f32, invKeep: f32, stream: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> stepBuf: array<u32>;
// inPlace
@group(0) @binding(1) var<storage, read_write> data: array<f32>;
@group(0) @binding(2) var<storage, read> stepBufInPlace: array<u32>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn keepScale(i: u32, step: u32) -> f32 {
  let key = pcg(pcg(pcg(p.seed) ^ p.stream) ^ step);
  let h = pcg(pcg(i + key) ^ pcg(key + 1u));
  let u = f32(h >> 8u) * (1.0 / 16777216.0);
  return select(0.0, p.invKeep, u < p.keep);
}

fn index(wg: vec3u, nwg: vec3u, li: u32) -> u32 { return (wg.y * nwg.x + wg.x) * 256u + li; }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i >= p.n) { return; }
  var step = p.step;
  if (HAS_STEP_TENSOR) { step += stepBuf[p.stepIndex]; }
  let v = src[i] * keepScale(i, step);
  if (ACCUMULATE) { dst[i] += v; } else { dst[i] = v; }
}

@compute @workgroup_size(256)
fn inPlace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i >= p.n) { return; }
  var step = p.step;
  if (HAS_STEP_TENSOR) { step += stepBufInPlace[p.stepIndex]; }
  data[i] *= keepScale(i, step);
}
