// Bias gradient: db[c] (+)= sum over all N*H*W rows of dy[row, DYOFF + c]. A workgroup takes 8
// channel vectors (V = vec4<f32> when dy's stride and offset and the channel count allow, else
// f32); its 64 invocations are 8 channel vectors x 8 row phases (invocation reads rows phase,
// phase + 8, ...), and the 8 phase sums of a channel vector are added through workgroup memory.
override ACCUM: bool = false; // add into db instead of overwriting it

alias V = {{V}};

struct Params { ROWS: u32, CV: u32, DYS: u32, DYOFF: u32 } // dy rows; channel vectors summed; row stride and offset in vectors
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<V>;
@group(0) @binding(2) var<storage, read_write> db: array<V>;

var<workgroup> part: array<V, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let c = (wg.y * nwg.x + wg.x) * 8u + li % 8u;
  let phase = li / 8u;
  var acc = V();
  if (c < p.CV) {
    for (var r = phase; r < p.ROWS; r += 8u) {
      acc += dy[r * p.DYS + p.DYOFF + c];
    }
  }
  part[li] = acc;
  workgroupBarrier();
  if (phase == 0u && c < p.CV) {
    var s = V();
    for (var k = 0u; k < 8u; k++) { s += part[k * 8u + li]; }
    if (ACCUM) { db[c] += s; } else { db[c] = s; }
  }
}
