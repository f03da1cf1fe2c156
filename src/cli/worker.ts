// `incept worker --queue redis://HOST:PORT`: takes jobs (shards of classify / saliency / evaluate,
// training runs of a sweep) from the queue and runs them on this machine's GPU, one at a time,
// until SIGINT / SIGTERM (it finishes the current job first). Run one per GPU, on any number of
// machines that see the same model files, images and output folder.
import { parseArgs } from 'node:util';
import { DEFAULT_QUEUE_NAME } from '../queue/jobs.ts';
import { startWorker } from '../queue/worker.ts';
import { UsageError } from './errors.ts';

export const WORKER_USAGE = 'incept worker --queue redis://HOST:PORT [--queue-name NAME] [--lock-seconds S]';

const HELP = `usage: ${WORKER_USAGE}

Takes jobs that 'incept submit' put on a BullMQ queue in Redis and runs them here, one at a time
(one worker per GPU). Each shard's results are written atomically into the submission's output
folder, which every worker and the submitter must see at the same path (a shared file system).
A worker that dies leaves its job to another once its lock expires; redoing a job is harmless.

  --queue URL          redis://HOST:PORT[/DB] (redis://:PASSWORD@HOST:PORT for a password)
  --queue-name NAME    the queue (default ${DEFAULT_QUEUE_NAME}); submit must use the same
  --lock-seconds S     a job whose worker stops renewing its lock for S seconds is handed to
                       another worker (default 30)
  --batch-delay-ms MS  sleep after every batch (for fault-injection tests: keeps a worker
                       mid-shard long enough to kill it there)`;

export async function workerMain(argv: string[]): Promise<number> {
  let values: { queue?: string; 'queue-name'?: string; 'lock-seconds'?: string; 'batch-delay-ms'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { queue: { type: 'string' }, 'queue-name': { type: 'string' }, 'lock-seconds': { type: 'string' }, 'batch-delay-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    throw new UsageError(`worker: ${(e as Error).message} (usage: ${WORKER_USAGE})`);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.queue) throw new UsageError(`worker: --queue redis://HOST:PORT is required (usage: ${WORKER_USAGE})`);
  const lock = values['lock-seconds'] === undefined ? 30 : Number(values['lock-seconds']);
  if (!(lock >= 1)) throw new UsageError(`worker: --lock-seconds needs a number >= 1, got '${values['lock-seconds']}'`);
  const delay = values['batch-delay-ms'] === undefined ? 0 : Number(values['batch-delay-ms']);
  if (!(delay >= 0)) throw new UsageError(`worker: --batch-delay-ms needs a number >= 0, got '${values['batch-delay-ms']}'`);
  let worker: ReturnType<typeof startWorker>;
  try {
    worker = startWorker({ url: values.queue, queueName: values['queue-name'], lockMs: lock * 1000, batchDelayMs: delay });
  } catch (e) {
    throw new UsageError(`worker: ${(e as Error).message}`);
  }
  const status = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal: the user will not wait for the current job.
        process.stderr.write(`incept worker: ${signal} again: stopping now (the current job is redone by another worker once its lock expires)\n`);
        resolve(130);
        return;
      }
      stopping = true;
      process.stderr.write(`incept worker: ${signal}: finishing the current job, then stopping (send it again to stop at once)\n`);
      worker.close().then(() => resolve(0), () => resolve(0));
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  // Sockets BullMQ or ioredis may still hold (Redis away) must not keep the process alive.
  setTimeout(() => process.exit(status), 1000).unref();
  return status;
}
