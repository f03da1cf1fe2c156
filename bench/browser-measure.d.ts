// Types of bench/browser-measure.js.
export interface InceptionTimings {
  forwardFirst: number;
  forward: number;
  stepFirst: number;
  step: number;
  losses: number[];
}
export function measureInception(incept: unknown, rt: unknown, opts?: { size?: number; batch?: number; trainBatch?: number; runs?: number }): Promise<InceptionTimings>;
