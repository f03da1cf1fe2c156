// Elementwise unary ops. OP selects the function (override constant, so each op is its own
// pipeline and the branch folds away at compile time).
override OP: u32 = 0u; // 0 relu, 1 relu6/clip(lo,hi), 2 sigmoid, 3 sqrt, 4 reciprocal, 5 identity,
                       // 6 hard sigmoid (alpha = lo, beta = hi), 7 hard swish, 8 exp, 9 log, 10 neg, 11 tanh

struct Params { n: u32, lo: f32, hi: f32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  let v = x[i];
  var r: f32;
  switch OP {
    case 0u: { r = max(v, 0.0); }
    // Not clamp(): with lo > hi WGSL lets clamp return the median; ONNX Clip wants hi (numpy.clip).
    case 1u: { r = min(max(v, p.lo), p.hi); }
    case 2u: { r = 1.0 / (1.0 + exp(-v)); }
    case 3u: { r = sqrt(v); }
    case 4u: { r = 1.0 / v; }
    case 6u: { r = min(max(p.lo * v + p.hi, 0.0), 1.0); }
    case 7u: { r = v * min(max(v / 6.0 + 0.5, 0.0), 1.0); }
    case 8u: { r = exp(v); }
    case 9u: { r = log(v); }
    case 10u: { r = -v; }
    // WGSL's tanh may overflow through exp for large |v|; tanh saturates to +-1 well before 10.
    case 11u: { r = select(tanh(v), sign(v), abs(v) > 10.0); }
    default: { r = v; }
  }
  y[i] = r;
}
