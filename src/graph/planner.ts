// Static memory planning. Every value slot of a plan gets a GPU buffer; slots share a buffer only
// when their lifetimes (first write .. last read, in step order) do not overlap.
//
// Why whole buffers and not offsets in one arena: WebGPU validates usage per buffer, not per
// range, so a dispatch may not read one range of a buffer and write another range of the same
// buffer. Giving each live slot its own buffer makes every dispatch's inputs and output distinct
// buffers by construction.
// Greedy, largest slot first: each slot goes to the smallest existing buffer that is big enough
// and free over its lifetime, else to a new buffer. Buffers never grow (largest first).

export interface SlotRequest {
  id: number;
  bytes: number;
  first: number; // first step that writes it
  last: number; // last step that reads it
}

export interface Placement extends SlotRequest {
  buffer: number; // index into MemoryPlan.buffers
}

export interface MemoryPlan {
  placements: Placement[];
  buffers: number[]; // byte size of each buffer
  peakBytes: number; // sum of the buffers: what the plan holds on the GPU
  naiveBytes: number; // what one buffer per slot would take
}

const ALIGN = 256;
const align = (n: number) => Math.ceil(Math.max(n, 4) / ALIGN) * ALIGN;
const live = (a: SlotRequest, b: SlotRequest) => a.first <= b.last && b.first <= a.last;

export function planMemory(slots: SlotRequest[]): MemoryPlan {
  const order = [...slots].sort((a, b) => b.bytes - a.bytes || a.first - b.first);
  const buffers: number[] = [];
  const members: SlotRequest[][] = [];
  const placements: Placement[] = [];
  for (const s of order) {
    const size = align(s.bytes);
    let best = -1;
    for (let i = 0; i < buffers.length; i++) {
      if (buffers[i] < size || members[i].some((m) => live(m, s))) continue;
      if (best < 0 || buffers[i] < buffers[best]) best = i;
    }
    if (best < 0) {
      best = buffers.length;
      buffers.push(size);
      members.push([]);
    }
    members[best].push(s);
    placements.push({ ...s, buffer: best });
  }
  placements.sort((a, b) => a.id - b.id);
  const peakBytes = buffers.reduce((n, b) => n + b, 0);
  const naiveBytes = slots.reduce((n, s) => n + align(s.bytes), 0);
  return { placements, buffers, peakBytes, naiveBytes };
}

/** Pairs of slots that are alive at the same step and share a buffer (a correct plan has none). */
export function overlappingLivePairs(plan: MemoryPlan): [Placement, Placement][] {
  const bad: [Placement, Placement][] = [];
  const ps = plan.placements;
  for (let i = 0; i < ps.length; i++)
    for (let j = i + 1; j < ps.length; j++) {
      if (ps[i].buffer === ps[j].buffer && live(ps[i], ps[j])) bad.push([ps[i], ps[j]]);
    }
  return bad;
}
