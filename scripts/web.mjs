#!/usr/bin/env node
// `npm run web`: builds the browser bundle and serves the page (web/) on localhost, printing its
// address. WebGPU needs a secure context, which http://localhost is.
//
//   node scripts/web.mjs [--port N] [--no-build]      (port 0: any free port)
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE, buildBrowser } from './build.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEB = join(ROOT, 'web');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.jpg': 'image/jpeg' };

/** The file a URL path names: /incept.js is the bundle, everything else comes from web/. */
function fileFor(urlPath) {
  const path = decodeURIComponent(urlPath.split('?')[0]);
  if (path === '/incept.js') return BUNDLE;
  const file = normalize(join(WEB, path === '/' ? 'index.html' : path));
  return file.startsWith(WEB + sep) && existsSync(file) && statSync(file).isFile() ? file : null;
}

/** Serves the page on 127.0.0.1:port; resolves to the server and its address. */
export function serve(port = 8080) {
  const server = createServer((req, res) => {
    const file = req.method === 'GET' ? fileFor(req.url ?? '/') : null;
    if (!file || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${req.url}`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, url: `http://localhost:${server.address().port}/` }));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`incept web: error: --port ${args[at + 1]} is not a port number`);
    process.exit(1);
  }
  try {
    if (!args.includes('--no-build')) {
      const { bytes } = await buildBrowser();
      console.log(`incept web: built the bundle (${(bytes / 1024).toFixed(1)} KiB)`);
    }
    const { url } = await serve(port);
    console.log(`incept web: serving the page at ${url} (Ctrl-C stops it)`);
  } catch (e) {
    console.error(`incept web: error: ${e.message}`);
    process.exit(1);
  }
}
