// Second half of the split-K filter gradient: dw[i] (+)= sum over chunks s of partial[s * E + i].
override ACCUM: bool = false; // add into dw instead of overwriting it

struct Params { E: u32, S: u32, _a: u32, _b: u32 } // elements of dw; chunks
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.E) { return; }
  var acc = 0.0;
  for (var s = 0u; s < p.S; s++) {
    acc += partial[s * p.E + i];
  }
  if (ACCUM) { dw[i] += acc; } else { dw[i] = acc; }
}
