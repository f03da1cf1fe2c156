// Transpose. `strided`: each output element reads input offset sum(coord[d] * stride[d]) over the
// (coalesced) output dims, innermost in slot 7. `tiled`: output [B, R, C] from input [B, C, R]
// through a 16x16 tile in shared memory, so both the reads and the writes are contiguous.
// Copies 32-bit words, so it serves float32 and int32 tensors alike.
struct Params {
  n: u32, rank: u32, _p0: u32, _p1: u32,
  shape: array<vec4u, 2>,
  stride: array<vec4u, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

fn at(a: array<vec4u, 2>, s: u32) -> u32 { return a[s >> 2u][s & 3u]; }

@compute @workgroup_size(256)
fn strided(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.n) { return; }
  var rem = i;
  var off = 0u;
  for (var k = 0u; k < p.rank; k++) {
    let s = 7u - k;
    off += (rem % at(p.shape, s)) * at(p.stride, s);
    rem /= at(p.shape, s);
  }
  y[i] = x[off];
}

const TILE: u32 = 16u;
var<workgroup> tile: array<array<u32, 17>, 16>; // +1 column avoids bank conflicts on the transposed read

@compute @workgroup_size(256)
fn tiled(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
  let B = at(p.shape, 5u);
  let R = at(p.shape, 6u);
  let C = at(p.shape, 7u);
  let tilesR = (R + TILE - 1u) / TILE;
  let tilesC = (C + TILE - 1u) / TILE;
  let g = wg.y * nwg.x + wg.x; // uniform across the workgroup, so the early return is too
  if (g >= B * tilesR * tilesC) { return; }
  let b = g / (tilesR * tilesC);
  let r0 = ((g / tilesC) % tilesR) * TILE;
  let c0 = (g % tilesC) * TILE;
  let lx = li % TILE;
  let ly = li / TILE;
  // Input row (c0 + ly), column (r0 + lx): consecutive lx read consecutive words.
  if (c0 + ly < C && r0 + lx < R) {
    tile[ly][lx] = x[b * R * C + (c0 + ly) * R + r0 + lx];
  }
  workgroupBarrier();
  // Output row (r0 + ly), column (c0 + lx): consecutive lx write consecutive words.
  if (r0 + ly < R && c0 + lx < C) {
    y[b * R * C + (r0 + ly) * C + c0 + lx] = tile[lx][ly];
  }
}
