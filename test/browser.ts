// A headless Chromium driven over the DevTools protocol, for tests that look at a page the way a
// person does: did it load without errors, did its images decode, what does it look like. The
// protocol goes over a pipe (--remote-debugging-pipe: JSON messages ended by NUL on fds 3 and 4),
// so no port, no WebSocket client and no npm dependency are needed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { HEADLESS_FLAGS } from '../scripts/chromium.mjs';

type Json = Record<string, any>;

interface Pending {
  resolve(v: Json): void;
  reject(e: Error): void;
  method: string;
}

export class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: ((msg: Json) => void)[] = [];
  private buffered = '';
  private stderr = '';
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly userDataDir: string,
  ) {
    const out = child.stdio[4] as Readable;
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => this.receive(chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`chromium exited (${signal ?? `status ${code}`}); its last output:\n${this.stderr}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  /** Starts Chromium headless with a fresh profile folder. */
  static async launch(executable: string, extraFlags: string[] = []): Promise<Browser> {
    const userDataDir = mkdtempSync(join(tmpdir(), 'incept-chromium-'));
    const child = spawn(executable, [...HEADLESS_FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe', ...extraFlags, 'about:blank'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      detached: true, // its own process group, so close() can end the renderers with it
    });
    const browser = new Browser(child, userDataDir);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    await browser.send('Browser.getVersion'); // answers once the protocol is up
    return browser;
  }

  get lastOutput(): string {
    return this.stderr;
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    let end = this.buffered.indexOf('\0');
    while (end >= 0) {
      const msg = JSON.parse(this.buffered.slice(0, end)) as Json;
      this.buffered = this.buffered.slice(end + 1);
      end = this.buffered.indexOf('\0');
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${p.method}: ${msg.error.message}${msg.error.data ? ` (${msg.error.data})` : ''}`));
        else p?.resolve(msg.result ?? {});
      } else {
        for (const l of [...this.listeners]) l(msg);
      }
    }
  }

  /** One protocol command; `sessionId` addresses a page attached with flatten. */
  send(method: string, params: Json = {}, sessionId?: string, timeoutMs = 30_000): Promise<Json> {
    if (this.exited) return Promise.reject(new Error(`${method}: chromium is not running`));
    const id = this.nextId++;
    const msg = JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) });
    return new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer from chromium in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      (this.child.stdio[3] as Writable).write(`${msg}\0`);
    });
  }

  /** Calls `fn` with every event until the returned function is called. */
  onEvent(fn: (msg: Json) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** The first event `method` (of `sessionId`) arriving after this call. */
  waitFor(method: string, sessionId: string, timeoutMs = 30_000): Promise<Json> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => (off(), reject(new Error(`no ${method} in ${timeoutMs} ms`))), timeoutMs);
      const off = this.onEvent((m) => {
        if (m.method === method && m.sessionId === sessionId) {
          clearTimeout(timer);
          off();
          resolve(m.params);
        }
      });
    });
  }

  /** Asks Chromium to quit, kills its process group if it lingers, deletes the profile. */
  async close(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.send('Browser.close', {}, undefined, 5000).catch(() => {});
      const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 5000));
      if ((await Promise.race([gone, timer])) === 'late' && this.child.pid) {
        try {
          process.kill(-this.child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(this.userDataDir, { recursive: true, force: true });
  }
}

export interface ImageState {
  alt: string;
  complete: boolean;
  /** img.decode() resolved. */
  decoded: boolean;
  naturalWidth: number;
  naturalHeight: number;
}

export interface PageCheck {
  title: string;
  /** console.error / console.assert calls, uncaught exceptions, and the browser's error log
   * (failed loads, Content-Security-Policy violations). */
  errors: string[];
  /** Every URL the page asked for, the page itself included (data: URIs cut short). */
  requests: string[];
  images: ImageState[];
  /** Ids of the page's <section> elements in order. */
  sections: string[];
  /** The document's size in CSS pixels at the given viewport width. */
  width: number;
  height: number;
  /** The whole page as PNG. */
  screenshot: Buffer;
}

const short = (url: string) => (url.length > 100 ? `${url.slice(0, 100)}...` : url);

const IMAGE_STATE = `Promise.all(Array.from(document.images, async (im) => {
  let decoded = true;
  try { await im.decode(); } catch { decoded = false; }
  return { alt: im.alt, complete: im.complete, decoded, naturalWidth: im.naturalWidth, naturalHeight: im.naturalHeight };
}))`;

const PAGE_FACTS = `({
  title: document.title,
  sections: Array.from(document.querySelectorAll('section'), (s) => s.id),
  width: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight,
})`;

/**
 * Opens `url` in a new tab of `browser` at `viewportWidth` CSS pixels, waits for its load event,
 * and reports errors, requests, image states and a full-page screenshot. The page runs no script
 * of its own; the checks are evaluated by the test through the protocol.
 */
export async function checkPage(browser: Browser, url: string, viewportWidth = 1280): Promise<PageCheck> {
  const { targetId } = await browser.send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await browser.send('Target.attachToTarget', { targetId, flatten: true });
  const errors: string[] = [];
  const requests: string[] = [];
  const urls = new Map<string, string>();
  const off = browser.onEvent((m) => {
    if (m.sessionId !== sessionId) return;
    const p = m.params;
    if (m.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) {
      errors.push(`console.${p.type}: ${p.args.map((a: Json) => a.value ?? a.description ?? '').join(' ')}`);
    } else if (m.method === 'Runtime.exceptionThrown') {
      errors.push(`exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`);
    } else if (m.method === 'Log.entryAdded' && p.entry.level === 'error') {
      errors.push(`${p.entry.source}: ${p.entry.text}${p.entry.url ? ` (${p.entry.url.slice(0, 80)})` : ''}`);
    } else if (m.method === 'Network.requestWillBeSent') {
      urls.set(p.requestId, p.request.url);
      requests.push(short(p.request.url));
    } else if (m.method === 'Network.loadingFailed' && !p.canceled) {
      const why = [p.errorText, p.blockedReason].filter(Boolean).join(', ');
      errors.push(`network: ${short(urls.get(p.requestId) ?? '?')} failed (${why})`);
    }
  });
  try {
    for (const domain of ['Page', 'Runtime', 'Log', 'Network']) await browser.send(`${domain}.enable`, {}, sessionId);
    const metrics = { width: viewportWidth, height: 900, deviceScaleFactor: 1, mobile: false };
    await browser.send('Emulation.setDeviceMetricsOverride', metrics, sessionId);
    const loaded = browser.waitFor('Page.loadEventFired', sessionId);
    const nav = await browser.send('Page.navigate', { url }, sessionId);
    if (nav.errorText) throw new Error(`opening ${url}: ${nav.errorText}`);
    await loaded;
    const evaluate = async (expression: string) => {
      const r = await browser.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
      if (r.exceptionDetails) throw new Error(`evaluating in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    };
    const images = (await evaluate(IMAGE_STATE)) as ImageState[];
    const facts = await evaluate(PAGE_FACTS);
    // The whole page in one picture: a viewport as tall as the document.
    await browser.send('Emulation.setDeviceMetricsOverride', { ...metrics, height: Math.min(facts.height, 16_000) }, sessionId);
    const shot = await browser.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId, 60_000);
    return { ...facts, errors, requests, images, screenshot: Buffer.from(shot.data, 'base64') };
  } finally {
    off();
    await browser.send('Target.closeTarget', { targetId }).catch(() => {});
  }
}
