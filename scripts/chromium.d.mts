// Types of scripts/chromium.mjs (plain JS so that it runs before anything is installed).

/** Flags for a headless run without a GPU, a sandbox or a network; add --user-data-dir. */
export const HEADLESS_FLAGS: string[];

/** The Chromium executable's path (INCEPT_CHROMIUM first, then the usual places and PATH), or null. */
export function findChromium(): string | null;

/** What `chromium --version` prints, or null when it does not start. */
export function chromiumVersion(path: string): string | null;

export interface EnsureResult {
  /** null when there is none and it could not be installed; `reason` says why. */
  path: string | null;
  installed: boolean;
  reason?: string;
}

/** Finds Chromium, or installs Debian's chromium package with apt-get as root on Debian. */
export function ensureChromium(options?: { dryRun?: boolean; quiet?: boolean }): EnsureResult;
