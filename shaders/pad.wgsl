// ONNX Pad. Per input dim d (right-aligned in 8 slots, innermost in slot 7): the output coord c maps
// to t = c - before[d] inside the kept (cropped) range [start[d], start[d] + len[d]); MODE says what
// happens outside it: 0 constant fill, 1 reflect (mirror without repeating the edge), 2 edge, 3 wrap.
override MODE: u32 = 0u;

struct Params {
  n: u32, rank: u32, value: f32, _p: u32,
  outShape: array<vec4u, 2>,
  inStride: array<vec4u, 2>,
  before: array<vec4u, 2>,
  start: array<vec4u, 2>,
  len: array<vec4u, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn at(a: array<vec4u, 2>, s: u32) -> u32 { return a[s >> 2u][s & 3u]; }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  var rem = i;
  var off = 0u;
  for (var k = 0u; k < p.rank; k++) {
    let s = 7u - k;
    let dim = at(p.outShape, s);
    let L = i32(at(p.len, s));
    var t = i32(rem % dim) - i32(at(p.before, s));
    rem /= dim;
    if (t < 0 || t >= L) {
      switch MODE {
        case 0u: { y[i] = p.value; return; }
        case 1u: {
          if (L == 1) { t = 0; } else {
            let period = 2 * (L - 1);
            t = ((t % period) + period) % period;
            if (t >= L) { t = period - t; }
          }
        }
        case 2u: { t = clamp(t, 0, L - 1); }
        default: { t = ((t % L) + L) % L; }
      }
    }
    off += (at(p.start, s) + u32(t)) * at(p.inStride, s);
  }
  y[i] = x[off];
}
