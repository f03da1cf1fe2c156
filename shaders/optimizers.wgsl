// Optimizer updates, in place, one dispatch per parameter tensor. Per-step values come from the
// small `hyper` storage buffer the host rewrites before each submit (so a recorded plan is replayed
// without re-recording) and the clip-by-global-norm pass writes on the GPU:
//   hyper[0] learning rate for this step (schedule value, Adam's bias correction folded in)
//   hyper[1] step: updates done before this one, as u32 bits
//   hyper[2] clip factor clip / max(global norm, clip) (1 when not clipping), hyper[3] the norm
// Constant hyper-parameters and the group's learning-rate multiplier and weight decay are uniforms.
//
// With g' = clip * g + wd * w and lr = hyper[0] * lrMult:
//   sgd       w -= lr g'
//   momentum  v = mu v + c g' (c = 1 on the first update, else 1 - dampening);
//             w -= lr v, or w -= lr (g' + mu v) with Nesterov                   (TF ApplyMomentum)
//   rmsprop   ms = rho ms + (1 - rho) g'^2; mom = mu mom + lr g' / sqrt(ms + eps); w -= mom (TF ApplyRMSProp)
//   adam      m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2; w -= lr m / (sqrt(v) + eps) (TF ApplyAdam)
//   adagrad   h += g'^2; w -= lr g' / (sqrt(h) + eps)
alias V = {{V}};
override KIND: u32 = 0u; // 0 sgd, 1 momentum, 2 rmsprop, 3 adam, 4 adagrad
override NESTEROV: bool = false;
override CLIP: bool = false;

struct Params {
  n: u32, _p0: u32, _p1: u32, _p2: u32,
  lrMult: f32, wd: f32, momentum: f32, dampening: f32,
  rho: f32, eps: f32, beta1: f32, beta2: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<V>;
@group(0) @binding(3) var<storage, read> grad: array<V>;
@group(0) @binding(4) var<storage, read_write> s1: array<V>;
@group(0) @binding(5) var<storage, read_write> s2: array<V>;

fn index(wg: vec3u, nwg: vec3u, li: u32) -> u32 { return (wg.y * nwg.x + wg.x) * 256u + li; }

fn gradient(i: u32) -> V {
  var g = grad[i];
  if (CLIP) { g *= hyper[2]; }
  return g + p.wd * w[i];
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i >= p.n) { return; }
  w[i] -= (hyper[0] * p.lrMult) * gradient(i);
}

// momentum (s1 = accumulator) or adagrad (s1 = sum of squares)
@compute @workgroup_size(256)
fn oneSlot(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i >= p.n) { return; }
  let lr = hyper[0] * p.lrMult;
  let g = gradient(i);
  if (KIND == 1u) {
    let first = bitcast<u32>(hyper[1]) == 0u;
    let c = select(1.0 - p.dampening, 1.0, first);
    let v = p.momentum * s1[i] + c * g;
    s1[i] = v;
    if (NESTEROV) { w[i] -= lr * (g + p.momentum * v); } else { w[i] -= lr * v; }
  } else {
    let h = s1[i] + g * g;
    s1[i] = h;
    w[i] -= lr * g / (sqrt(h) + V(p.eps));
  }
}

// rmsprop (s1 = ms, s2 = mom) or adam (s1 = m, s2 = v)
@compute @workgroup_size(256)
fn twoSlots(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i >= p.n) { return; }
  let lr = hyper[0] * p.lrMult;
  let g = gradient(i);
  if (KIND == 2u) {
    let ms = p.rho * s1[i] + (1.0 - p.rho) * g * g;
    s1[i] = ms;
    let mom = p.momentum * s2[i] + lr * g / sqrt(ms + V(p.eps));
    s2[i] = mom;
    w[i] -= mom;
  } else {
    let m = p.beta1 * s1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * s2[i] + (1.0 - p.beta2) * g * g;
    s1[i] = m;
    s2[i] = v;
    w[i] -= lr * m / (sqrt(v) + V(p.eps));
  }
}
