// Copies one concat input, viewed as [outer, len] (len = its axis size x inner), into the output
// viewed as [outer, outLen] at column `offset`.
struct Params { n: u32, len: u32, outLen: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  y[(i / p.len) * p.outLen + p.offset + i % p.len] = x[i];
}
