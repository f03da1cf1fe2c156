// The few browser APIs src/platform/browser-image.ts uses, declared here because the project
// compiles against Node's globals (lib ES2022 + @types/node), not the whole DOM.
interface ImageBitmap {
  readonly width: number;
  readonly height: number;
  close(): void;
}
interface ImageBitmapOptions {
  premultiplyAlpha?: 'default' | 'none' | 'premultiply';
  colorSpaceConversion?: 'default' | 'none';
}
declare function createImageBitmap(image: Blob, options?: ImageBitmapOptions): Promise<ImageBitmap>;
interface OffscreenCanvasRenderingContext2D {
  drawImage(image: ImageBitmap, dx: number, dy: number): void;
  getImageData(sx: number, sy: number, sw: number, sh: number): { data: Uint8ClampedArray };
}
declare class OffscreenCanvas {
  constructor(width: number, height: number);
  getContext(kind: '2d', options?: { willReadFrequently?: boolean }): OffscreenCanvasRenderingContext2D | null;
}
