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
import type { ParamLayout } from './layout.ts';

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
    const copies: { host: Float32Array; offset: number; data: Float32Array }[] = [];
    for (const [gi, g] of this.groups.entries()) {
      for (const e of g.layout.entries) {
        const t = this.tensors.get(g.feed(e.name));
        if (!t) continue;
        const data = (await t.getData()) as Float32Array;
        for (let i = 0; i < data.length; i++) {
          if (!Number.isFinite(data[i])) {
            this.reset();
            throw new CohortError('NON_FINITE_LOSS', `training diverged: ${e.name} has a non-finite value after the last steps on the device`,
              'lower the learning rate or enable gradient clipping (clipNorm); the weights of the previous synchronisation were kept');
          }
        }
        copies.push({ host: hosts[gi], offset: e.offset, data });
      }
    }
    for (const c of copies) c.host.set(c.data, c.offset);
    this.ahead = false;
  }

  /** Forget the resident tensors (the host vectors were set from outside: setParameters, restore). */
  reset(): void {
    for (const t of this.tensors.values()) if (t.location === 'gpu-buffer') t.dispose();
    this.tensors.clear();
    this.ahead = false;
  }
}
