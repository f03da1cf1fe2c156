// Softmax / log-softmax over rows of `len` elements spaced `inner` apart (tensor viewed as
// [outer, len, inner]; row r = (r / inner, r % inner)). LOG selects log-softmax.
// Max and sum come from one pass with the online recurrence: on a new max m', s *= exp(m - m').
override LOG: u32 = 0u;

struct Params { rows: u32, len: u32, inner: u32, _p: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const LOWEST: f32 = -3.4e38; // stands in for -inf (WGSL has no infinity literal)

fn rowBase(r: u32) -> u32 {
  return (r / p.inner) * p.len * p.inner + r % p.inner;
}

// Folds value v into the running (max, sum) pair.
fn push(ms: vec2f, v: f32) -> vec2f {
  if (v > ms.x) { return vec2f(v, ms.y * exp(ms.x - v) + 1.0); }
  return vec2f(ms.x, ms.y + exp(v - ms.x));
}

// Combines two (max, sum) pairs.
fn merge(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn finish(v: f32, ms: vec2f) -> f32 {
  if (LOG == 1u) { return v - ms.x - log(ms.y); }
  return exp(v - ms.x) / ms.y;
}

@compute @workgroup_size(64)
fn rowPerThread(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let r = (wg.y * nwg.x + wg.x) * 64u + li;
  if (r >= p.rows) { return; }
  let base = rowBase(r);
  var ms = vec2f(LOWEST, 0.0);
  for (var k = 0u; k < p.len; k++) { ms = push(ms, x[base + k * p.inner]); }
  for (var k = 0u; k < p.len; k++) {
    let i = base + k * p.inner;
    y[i] = finish(x[i], ms);
  }
}

const GROUP: u32 = 256u;
var<workgroup> red: array<vec2f, GROUP>;

@compute @workgroup_size(GROUP)
fn rowPerGroup(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let r = wg.y * nwg.x + wg.x; // uniform across the workgroup, so the early return is too
  if (r >= p.rows) { return; }
  let base = rowBase(r);
  var ms = vec2f(LOWEST, 0.0);
  for (var k = li; k < p.len; k += GROUP) { ms = push(ms, x[base + k * p.inner]); }
  red[li] = ms;
  workgroupBarrier();
  for (var s = GROUP / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = merge(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let total = red[0];
  for (var k = li; k < p.len; k += GROUP) {
    let i = base + k * p.inner;
    y[i] = finish(x[i], total);
  }
}
