// score[n] = logits[n, label[n]] and dscore/dlogits = one-hot(label): the backward seed for the
// saliency of a class score (the gradient of the logit itself, not of the softmax loss).
import { type Dispatch, Params, run } from '../gpu/recorder.ts';
import { type Tensor, empty, shapeString } from '../gpu/tensor.ts';

export function classScoreDispatch(logits: Tensor, labels: Tensor, score: Tensor, dLogits: Tensor): Dispatch {
  const n = logits.shape[0];
  const k = logits.size / n;
  const label = `classScore logits ${shapeString(logits.shape)}`;
  if (labels.size !== n || score.size !== n || dLogits.size !== logits.size || labels.dtype !== 'int32') {
    throw new Error(`${label}: needs int32 labels [${n}], score [${n}] and dLogits like the logits`);
  }
  if (n * k > 64 * 65535) throw new Error(`${label}: more than ${64 * 65535} logits`);
  return {
    label,
    pipeline: { shader: 'class_score' },
    params: new Params().u32(n, k).build(),
    buffers: [logits.binding, labels.binding, score.binding, dLogits.binding],
    workgroups: [Math.ceil((n * k) / 64), 1, 1],
  };
}

export function classScore(logits: Tensor, labels: Tensor): { score: Tensor; dLogits: Tensor } {
  const score = empty(logits.rt, [logits.shape[0]], 'float32', 'class score');
  const dLogits = empty(logits.rt, logits.shape, 'float32', 'class score gradient');
  run(logits.rt, [classScoreDispatch(logits, labels, score, dLogits)]);
  return { score, dLogits };
}

/** Float64 CPU reference (tests only). */
export function classScoreRef(logits: ArrayLike<number>, k: number, labels: ArrayLike<number>): { score: Float64Array; dLogits: Float64Array } {
  const n = labels.length;
  const score = new Float64Array(n);
  const dLogits = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    score[i] = logits[i * k + labels[i]];
    dLogits[i * k + labels[i]] = 1;
  }
  return { score, dLogits };
}
