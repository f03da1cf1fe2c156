// The host platform, browser side: the same exports as host.ts (checked below), for pages.
// scripts/build.mjs bundles this file in place of host.ts and supplies 'incept:assets', every WGSL
// shader and .proto schema of the package inlined as text, so the bundle fetches nothing.
import ASSETS from 'incept:assets';

export const HOST = 'browser' as const;

export function assetText(path: string): string {
  const text = ASSETS[path];
  if (text === undefined) throw new Error(`incept asset ${path}: not in the browser bundle (rebuild with npm run build)`);
  return text;
}

export function acquireGpu(): GPU {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new Error(
      'this browser has no WebGPU (navigator.gpu is missing): use a recent Chrome, Edge or Safari over https or localhost; ' +
        'headless Chromium needs --enable-unsafe-webgpu',
    );
  }
  return gpu;
}

export function warn(message: string): void {
  console.error(message); // device loss and uncaptured GPU errors are errors
}

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function readFileBytes(path: string): Uint8Array {
  throw new Error(`${path}: a page cannot read files by path; pass the file's bytes (File.arrayBuffer()) instead`);
}

export function encodeRgbaPng(_width: number, _height: number, _rgba: Uint8Array): Uint8Array {
  throw new Error('PNG encoding is not in the browser bundle: draw the RGBA pixels into a <canvas> (ImageData) instead');
}

// The compiler checks that this module can stand in for host.ts.
({ HOST, assetText, acquireGpu, warn, LITTLE_ENDIAN, readFileBytes, encodeRgbaPng }) satisfies Omit<typeof import('./host.ts'), 'HOST'> & { HOST: 'browser' };
