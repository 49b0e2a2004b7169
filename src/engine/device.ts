/**
 * Device-resident weights (issue 14.2). Between two host synchronisations the trainer feeds each step the tensors the previous
 * step returned (new params -> params, new optimizer state -> state, new buffers -> buffers) instead of views of its host vectors.
 * With the webgpu provider those outputs stay on the GPU (session option preferredOutputLocation 'gpu-buffer'), so a step moves
 * only the minibatch, the hyper-parameters and the loss across the bus. With cpu (tests) they are host tensors: the same
 * bookkeeping, no copy into the flat vectors per step. onnxruntime-node exposes no device memory for the CUDA provider (no
 * I/O binding, no CUDA location), so on cuda this mode is off and every step copies (docs/engine.md, GPU).
 *
 * What stays on the host and why: the flat parameter vector, optimizer state and buffers (averaging, checkpoints and
 * getParameters() read them; synced at the end of every trainEpoch/trainSteps call, i.e. once per round), the minibatch
 * (gathered per step from the host SampleSet by index: shuffling on the device is not expressible in onnxruntime-node), the
 * learning rate and the loss (one float per step: the divergence check).
 */
import type * as ort from 'onnxruntime-node';
import { CohortError } from '../util/errors.ts';
import { GraphBuilder } from './graph/index.ts';
import type { LayoutEntry, ParamLayout } from './layout.ts';
import { cachedSession } from './sessions.ts';

/** One resident group: the layout it mirrors, its feed name and step-output name per layout entry. */
export interface ResidentGroup {
  layout: ParamLayout;
  feed: (entry: string) => string;
  output: (entry: string) => string;
}

export class ResidentWeights {
  /** feed name -> the tensor the last accepted step returned for it. */
  private readonly tensors = new Map<string, ort.Tensor>();
  /** true when the tensors are newer than the host vectors. */
  private ahead = false;

  constructor(private readonly groups: readonly ResidentGroup[]) {}

  /** Names of the step outputs that should stay on the device. */
  outputNames(): string[] {
    return this.groups.flatMap((g) => g.layout.entries.map((e) => g.output(e.name)));
  }

  /** Replace the host views in `feeds` by the resident tensors (a no-op before the first step after a sync/reset). */
  feed(feeds: Record<string, ort.Tensor>): void {
    for (const [name, t] of this.tensors) if (name in feeds) feeds[name] = t;
  }

  /** Keep a step's outputs as the next step's inputs; nothing is copied to the host. */
  take(out: ort.InferenceSession.OnnxValueMapType): void {
    for (const g of this.groups) {
      for (const e of g.layout.entries) {
        const t = out[g.output(e.name)];
        if (!t) throw new CohortError('DEVICE_STATE', `step output ${g.output(e.name)} is missing`, 'the train-step graph and the trainer disagree: report this as a bug');
        const old = this.tensors.get(g.feed(e.name));
        // the previous step's device buffers were this step's inputs and are free now (ORT allocated them: dispose, or they leak)
        if (old && old !== t && old.location === 'gpu-buffer') old.dispose();
        this.tensors.set(g.feed(e.name), t);
      }
    }
    this.ahead = true;
  }

  get pending(): boolean { return this.ahead; }

  /**
   * Copy the resident tensors into the host vectors (one per group, in group order). A non-finite value throws NON_FINITE_LOSS
   * and leaves the host vectors at the last synchronisation (the step it happened at is not known: the per-step check reads only the loss).
   */
  async sync(hosts: readonly Float32Array[]): Promise<void> {
    if (!this.ahead) return;
    const copies: { host: Float32Array; entry: LayoutEntry; data: Float32Array }[] = [];
    for (const [gi, g] of this.groups.entries()) {
      const held = g.layout.entries.filter((e) => e.length > 0 && this.tensors.has(g.feed(e.name)))
        .map((e) => ({ entry: e, feed: g.feed(e.name), tensor: this.tensors.get(g.feed(e.name)) as ort.Tensor }));
      for (const { entry, data } of await toHost(held)) {
        const bad = data.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) {
          this.reset();
          throw new CohortError('NON_FINITE_LOSS', `training diverged: ${entry.name} has a non-finite value after the last steps on the device`,
            'lower the learning rate or enable gradient clipping (clipNorm); the weights of the previous synchronisation were kept');
        }
        copies.push({ host: hosts[gi], entry, data });
      }
    }
    for (const c of copies) c.host.set(c.data, c.entry.offset);
    this.ahead = false;
  }

  /** Forget the resident tensors (the host vectors were set from outside: setParameters, restore). */
  reset(): void {
    for (const t of this.tensors.values()) if (t.location === 'gpu-buffer') t.dispose();
    this.tensors.clear();
    this.ahead = false;
  }
}

interface Held { entry: LayoutEntry; feed: string; tensor: ort.Tensor }

/**
 * The values of resident tensors on the host. Host tensors (cpu provider) are read directly. onnxruntime-node cannot read a
 * 'gpu-buffer' tensor: its getData() calls a download that is "not implemented" and throws a C++ exception that aborts the
 * whole process (found on the first real webgpu run, lavapipe). So a small session on the same provider takes the group's
 * device tensors as inputs and returns them flattened and concatenated as one host output: ORT copies it device -> host.
 */
async function toHost(held: readonly Held[]): Promise<{ entry: LayoutEntry; data: Float32Array }[]> {
  if (!held.some((h) => h.tensor.location === 'gpu-buffer')) {
    return Promise.all(held.map(async (h) => ({ entry: h.entry, data: (await h.tensor.getData()) as Float32Array })));
  }
  const key = `download|${held.map((h) => `${h.feed}:${h.entry.shape.join('x')}`).join(';')}`;
  const { session } = await cachedSession(key, () => downloadGraph(held), { providers: ['webgpu'], fallback: 'error', threads: 1 });
  const out = await session.run(Object.fromEntries(held.map((h) => [h.feed, h.tensor])));
  const flat = out[FLAT].data as Float32Array;
  let at = 0;
  return held.map((h) => { const data = flat.subarray(at, at + h.entry.length); at += h.entry.length; return { entry: h.entry, data }; });
}

const FLAT = 'flat';

/** A graph whose one output is the inputs flattened and concatenated in order. */
function downloadGraph(held: readonly Held[]): Uint8Array {
  const g = new GraphBuilder('download');
  const flat = held.map((h) => g.reshape(g.input(h.feed, h.entry.shape), [h.entry.length]));
  g.output(flat.length === 1 ? g.identity(flat[0]) : g.concat(flat, 0), FLAT);
  return g.toModelProto();
}
