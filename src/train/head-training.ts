// Fine-tuning a new head on images already in memory: what a page does with the user's own
// pictures (nothing leaves the page), and a short run anywhere else. The dataset, loader and
// checkpointing machinery of fineTune (src/train/finetune.ts) reads folders and writes run
// directories; this is the same Trainer step on random batches drawn from arrays.
import type { OptimizerConfig } from './optimizers.ts';
import { Rng } from './rng.ts';
import type { TransferModel } from './head.ts';
import { Trainer } from './trainer.ts';

export interface HeadTrainingOptions {
  steps: number;
  batch: number;
  learningRate: number;
  /** Default Adam: it needs no tuning of its learning rate for a short run on a new head. */
  optimizer?: OptimizerConfig;
  /** Which parameters train (default: the new head's scopes only). */
  trainable?: (param: string) => boolean;
  seed?: number;
  /** Called after every step with its loss (mean over the batch, before the update). */
  onStep?: (step: number, loss: number) => void | Promise<void>;
}

/**
 * Trains `tm` on `images` (N preprocessed NHWC images, N * H * W * 3 values) and their class
 * `labels`; returns the loss of every step. The model's parameters are updated in place on the GPU,
 * so tm.model.predict sees the trained head at once.
 */
export async function trainHead(tm: TransferModel, images: Float32Array, labels: Int32Array, opts: HeadTrainingOptions): Promise<number[]> {
  const [h, w, c] = tm.model.inputShape;
  const per = h * w * c;
  const n = labels.length;
  if (n === 0 || images.length !== n * per) throw new Error(`head training: ${images.length} image values for ${n} labels of ${h}x${w}x${c} images`);
  const classes = tm.head.classes;
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= classes) throw new Error(`head training: label ${l} of image ${i} is not a class of a ${classes}-class head`);
  });
  if (!(opts.batch >= 1 && Number.isInteger(opts.batch))) throw new Error(`head training: batch ${opts.batch} is not a positive integer`);
  const under = (name: string) => tm.headScopes.some((s) => name.startsWith(`${s}/`));
  const trainer = new Trainer(tm.model, {
    batch: opts.batch,
    optimizer: opts.optimizer ?? { kind: 'adam' },
    learningRate: opts.learningRate,
    training: {
      logits: tm.logits,
      loss: tm.head.kind === 'sigmoid' ? 'sigmoid_cross_entropy' : 'softmax_cross_entropy',
      trainable: opts.trainable ?? under,
      seed: opts.seed ?? 0,
    },
  });
  const rng = new Rng(opts.seed ?? 0);
  const batchImages = new Float32Array(opts.batch * per);
  const batchLabels = new Int32Array(opts.batch);
  const losses: number[] = [];
  try {
    for (let step = 0; step < opts.steps; step++) {
      for (let j = 0; j < opts.batch; j++) {
        const i = Math.floor(rng.next() * n);
        batchImages.set(images.subarray(i * per, (i + 1) * per), j * per);
        batchLabels[j] = labels[i];
      }
      const { loss } = await trainer.trainStep(batchImages, batchLabels);
      losses.push(loss);
      await opts.onStep?.(step, loss);
    }
    // The model's plans read the same GPU parameters the trainer updated; the host copy is for saving.
    await trainer.syncToHost();
  } finally {
    trainer.dispose();
  }
  return losses;
}
