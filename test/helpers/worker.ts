/**
 * The real training worker thread (src/peer/worker.ts, started through worker-boot.mjs as a peer daemon starts it) for unit tests:
 * start it, talk to it request by request, and always terminate it, whatever the test body throws.
 */
import { Worker } from 'node:worker_threads';
import type { WorkerInit, WorkerReply } from '../../src/peer/worker.ts';

export type WorkerReady = Extract<WorkerReply, { op: 'ready' }>;

/** Every reply the worker posted so far, and a wait for the first one (already posted or still to come) that matches. */
export interface WorkerReplies {
  messages: WorkerReply[];
  next: (pred: (r: WorkerReply) => boolean) => Promise<WorkerReply>;
}

/** One request, answered by the reply with the same `rid` (the worker also posts unasked reports, e.g. 'graphs'). */
export function ask(w: Worker, req: Record<string, unknown>): Promise<WorkerReply> {
  return new Promise((resolve) => {
    const on = (r: WorkerReply): void => { if (r.rid === req.rid) { w.off('message', on); resolve(r); } };
    w.on('message', on);
    w.postMessage(req);
  });
}

function record(w: Worker): WorkerReplies {
  const messages: WorkerReply[] = [];
  const waiting: { pred: (r: WorkerReply) => boolean; resolve: (r: WorkerReply) => void }[] = [];
  w.on('message', (r: WorkerReply) => {
    messages.push(r);
    for (const x of waiting.filter((x) => x.pred(r))) { waiting.splice(waiting.indexOf(x), 1); x.resolve(r); }
  });
  const next = (pred: (r: WorkerReply) => boolean): Promise<WorkerReply> => new Promise((resolve, reject) => {
    const seen = messages.find(pred);
    if (seen) return resolve(seen);
    waiting.push({ pred, resolve });
    w.once('error', reject);
  });
  return { messages, next };
}

/** A worker whose start may fail (e.g. provider policy): the body sees its replies from the first one on. */
export async function withStartingWorker(init: WorkerInit, body: (w: Worker, replies: WorkerReplies) => Promise<void>): Promise<void> {
  const w = new Worker(new URL('../../src/peer/worker-boot.mjs', import.meta.url), { workerData: init });
  try {
    await body(w, record(w));
  } finally {
    await w.terminate();
  }
}

/** A worker that must start: its first reply is 'ready' (anything else fails the test with that reply). */
export async function withWorker(init: WorkerInit, body: (w: Worker, ready: WorkerReady, replies: WorkerReplies) => Promise<void>): Promise<void> {
  await withStartingWorker(init, async (w, replies) => {
    const first = await replies.next(() => true);
    if (first.op !== 'ready') throw new Error(JSON.stringify(first));
    await body(w, first, replies);
  });
}

/** `rounds` rounds of local training from `params` (requests rid0, rid0 + 1, ...): the parameters after the last one. */
export async function trainRounds(w: Worker, params: Float32Array, rounds: number, rid0 = 10): Promise<Float32Array> {
  let p = params;
  for (let e = 0; e < rounds; e++) {
    const t = await ask(w, { rid: rid0 + e, op: 'train', params: p.slice() });
    if (t.op !== 'trained') throw new Error(JSON.stringify(t));
    p = t.params;
  }
  return p;
}
