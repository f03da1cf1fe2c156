// Entry of the loader's decode workers. A worker thread given `execArgv: ['--import', 'tsx']` and
// a .ts file fails on Node 20 (ERR_UNKNOWN_FILE_EXTENSION: the inherited loader hooks are not in
// place when the worker's main module loads), so this plain-JS entry registers tsx's loader
// itself and then imports the TypeScript worker named in workerData.entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
