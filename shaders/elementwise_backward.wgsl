// Backward of broadcasting elementwise ops and of reductions.
//
// reduceToOperand: the gradient of one operand of a broadcasting binary op is the sum, over the
// dims it was broadcast along, of dy times the local derivative. One invocation per operand
// element walks those dims. Dims are split into kept (the operand's own, indexing the output,
// innermost in slot 7) and reduced, coalesced on the host; every per-dim array is right-aligned in
// 8 slots with strides for dy, a and b (0 where that tensor is broadcast).
//   MODE 0: dy            (add, sub with scale -1, expand)
//   MODE 1: dy * b        (mul, gradient of a)
//   MODE 2: dy * a        (mul, gradient of b)
//   MODE 3: dy / b        (div, gradient of a)
//   MODE 4: -dy * a / b^2 (div, gradient of b)
// broadcastFrom: reduce backward, dx[i] (+)= scale * dy[the output element x[i] was reduced into].
override MODE: u32 = 0u;
override ACCUMULATE: bool = false;

struct Params {
  outCount: u32, redCount: u32, keptRank: u32, redRank: u32,
  scale: f32, _p0: u32, _p1: u32, _p2: u32,
  keptShape: array<vec4u, 2>,
  keptDy: array<vec4u, 2>,
  keptA: array<vec4u, 2>,
  keptB: array<vec4u, 2>,
  redShape: array<vec4u, 2>,
  redDy: array<vec4u, 2>,
  redA: array<vec4u, 2>,
  redB: array<vec4u, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
// broadcastFrom
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

fn at(v: array<vec4u, 2>, s: u32) -> u32 { return v[s >> 2u][s & 3u]; }

fn local(g: f32, av: f32, bv: f32) -> f32 {
  switch MODE {
    case 1u: { return g * bv; }
    case 2u: { return g * av; }
    case 3u: { return g / bv; }
    case 4u: { return -g * av / (bv * bv); }
    default: { return g; }
  }
}

@compute @workgroup_size(64)
fn reduceToOperand(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
  let o = (wg.y * nwg.x + wg.x) * 64u + li;
  if (o >= p.outCount) { return; }
  // Offsets of this operand element's first contribution in dy, a and b.
  var base = vec3u(0u);
  var rem = o;
  for (var k = 0u; k < p.keptRank; k++) {
    let s = 7u - k;
    let c = rem % at(p.keptShape, s);
    rem /= at(p.keptShape, s);
    base += c * vec3u(at(p.keptDy, s), at(p.keptA, s), at(p.keptB, s));
  }
  var acc = 0.0;
  for (var r = 0u; r < p.redCount; r++) {
    var off = base;
    var rr = r;
    for (var k = 0u; k < p.redRank; k++) {
      let s = 7u - k;
      let c = rr % at(p.redShape, s);
      rr /= at(p.redShape, s);
      off += c * vec3u(at(p.redDy, s), at(p.redA, s), at(p.redB, s));
    }
    acc += local(dy[off.x], a[off.y], b[off.z]);
  }
  let v = acc * p.scale;
  if (ACCUMULATE) { grad[o] += v; } else { grad[o] = v; }
}

// Params reused: outCount = elements of dx, keptShape = dx's (coalesced) dims, keptDy = dy's
// strides in dx coordinates (0 along reduced axes).
@compute @workgroup_size(256)
fn broadcastFrom(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.outCount) { return; }
  var off = 0u;
  var rem = i;
  for (var k = 0u; k < p.keptRank; k++) {
    let s = 7u - k;
    off += (rem % at(p.keptShape, s)) * at(p.keptDy, s);
    rem /= at(p.keptShape, s);
  }
  let v = dy[off] * p.scale;
  if (ACCUMULATE) { dx[i] += v; } else { dx[i] = v; }
}
