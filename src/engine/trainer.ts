/**
 * Trainer: local training of one model on one peer (pinned API; averaging and the daemon code against it).
 *
 *   const t = await Trainer.create({ model, optimizer: { type: 'adam', lr: 1e-3 }, batchSize: 32, seed: 1 }, trainSet);
 *   await t.trainEpoch(trainSet);  const m = await t.evaluate(testSet);   // { loss, accuracy, auc, dice, ... }
 *   const v = t.getParameters();   t.setParameters(averaged);            // flat Float32Array, layout t.layout (+ hash)
 *   t.setProximalAnchor(roundStart);                                     // FedProx when cfg.proximalMu > 0
 *   const onnxBytes = t.exportOnnx();  const ck = t.checkpoint();  t.restore(ck);
 *
 * Parameters and optimizer state live on the host as flat Float32Arrays and are fed to cached ORT sessions as inputs
 * (zero-copy views); each step's outputs are copied back. Full batches run `fusedSteps` at a time in one ONNX Loop;
 * the remaining batches run one by one, and a partial last batch gets its own (cached) graph. A non-finite loss or
 * update throws CohortError('NON_FINITE_LOSS') and leaves the weights of the last good step (a fused chunk that diverges is
 * replayed step by step up to the bad step).
 */
import * as ort from 'onnxruntime-node';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { Rng } from '../util/random.ts';
import { concatFloat32, type SampleSet } from '../data/samples.ts';
import { batchFeeds, prepare, type Prepared } from './batches.ts';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.ts';
import { declareParams, evalGraph, exportGraph, gradientGraph, N, trainLoop, trainStep, type Plan } from './graphs.ts';
import { checkVector, makeLayout, view, type ParamLayout } from './layout.ts';
import { defaultLoss, makeLoss } from './losses.ts';
import { computeIntervals, computeMetrics, type Evaluation, type Metrics } from './evaluate.ts';
import type { BootstrapOptions } from '../util/stats.ts';
import { hyperNames, stateSlots, stepHyper } from './optimizers.ts';
import { initialBuffers, initialValues, type BufferDecl, type ParamDecl } from './params.ts';
import { DEFAULT_PROVIDERS, defaultThreads, type ExecutionProviderName, type ProviderFallback } from './providers.ts';
import { cachedSession, notePlacement, type CachedSession } from './sessions.ts';
import { cpuFallbackNodes } from './placement.ts';
import { ResidentWeights } from './device.ts';
import { parseLossSpec, parseModelSpec, parseOptimizerSpec, type LossSpec, type ModelSpec, type OptimizerSpec,
  type ResolvedLossSpec, type ResolvedModelSpec, type ResolvedOptimizerSpec } from './spec.ts';
import { buildModel } from './zoo/index.ts';
import { DP, dpError, dpSlots, dpTrainStep, dpUnsupported } from './dp.ts';
import type { DpPhase } from '../privacy/accountant.ts';
import { randomFillSync } from 'node:crypto';

export type { Metrics } from './evaluate.ts';

export interface TrainConfig {
  model: ModelSpec;
  loss?: LossSpec;
  optimizer: OptimizerSpec;
  batchSize: number;
  seed: number;
  providers?: ExecutionProviderName[];
  /** When a wanted provider cannot run: 'cpu' (default: fall back down the list, then to cpu, logged) or 'error' (PROVIDER_UNAVAILABLE). */
  providerFallback?: ProviderFallback;
  /** Profile each graph's first run to count the nodes each provider ran (graphReports; src/engine/placement.ts). Default false. */
  measurePlacement?: boolean;
  /**
   * Keep params, optimizer state and buffers as the sessions' own tensors between host synchronisations (src/engine/device.ts).
   * Default: on for webgpu (outputs stay in GPU buffers), off otherwise (cuda: not exposed by onnxruntime-node; cpu: unchanged path).
   */
  deviceResident?: boolean;
  threads?: number;
  /** FedProx: adds (mu/2)||x - anchor||^2 to the objective (anchor set by setProximalAnchor). */
  proximalMu?: number;
  /**
   * Full batches fused per session run with an ONNX Loop. Default: 8 for mlp (session round trips dominate small models:
   * measured 2.7x PyTorch with it), 1 otherwise (conv nets are compute-bound; the Loop only adds compile time).
   */
  fusedSteps?: number;
  /**
   * Skip the partial last batch of an epoch instead of running it on its own graph. Each distinct partial size costs
   * one more cached session (and its compile time); simulations whose peers hold many different sample counts can
   * turn this on. Default false: every sample is used.
   */
  dropLast?: boolean;
  /**
   * DP-SGD (src/engine/dp.ts): per-sample gradients clipped to `clip`, Gaussian noise of std noiseMultiplier * clip,
   * Poisson sampling at rate batchSize / n. Noise comes from the OS CSPRNG unless `noiseSeed` is set (simulations, tests:
   * reproducible, not for real patients). Forces fusedSteps 1; refused for BatchNorm models and the Cox loss.
   */
  dp?: DpConfig;
}

export interface DpConfig { clip: number; noiseMultiplier: number; noiseSeed?: number }

export interface StepOptions { lr?: number; rng?: Rng; onStep?: (step: number, loss: number) => void }

/** Which provider ran one graph variant (step|B, loop|B|K, eval|B, grad|B, dp|S|clip) and how many of its nodes fell back to CPU. */
export interface GraphReport {
  graph: string;
  provider: ExecutionProviderName;
  /** Providers refused before it, with the reason. */
  refused: string[];
  /** Nodes that ran (measured from ORT's profile; only with measurePlacement). */
  nodes?: number;
  /** Nodes ORT placed on CPU although the graph's provider is a GPU one: 0 on cpu; null when not measured (measurePlacement off). */
  cpuFallbackNodes: number | null;
}

const log = logger('engine:trainer');
const announced = new Set<string>();

export class Trainer {
  readonly layout: ParamLayout;
  readonly stateLayout: ParamLayout;
  /** Non-trainable buffers (BatchNorm running statistics): local to this peer, not in getParameters, saved in checkpoints. */
  readonly bufferLayout: ParamLayout;
  readonly provider: ExecutionProviderName;
  private params: Float32Array;
  private state: Float32Array;
  private anchor: Float32Array | null = null;
  private buffers: Float32Array;
  private readonly dropoutRng: Rng;
  private stepCount = 0;
  private readonly shuffle: Rng;
  private disposed = false;
  private busy = false;
  private readonly dpNoise: (() => number) | null;
  /** DP-SGD steps taken, as accountant phases (consecutive steps with the same rate and noise merged). */
  private readonly phases: DpPhase[] = [];
  private readonly graphInfo = new Map<string, GraphReport>();
  /** stepCount at the last host synchronisation of the resident weights. */
  private syncedSteps = 0;
  /** Device-resident weights (null: every step copies its outputs into the host vectors). */
  private readonly resident: ResidentWeights | null;

  private constructor(
    private readonly cfg: Required<Pick<TrainConfig, 'batchSize' | 'seed' | 'threads' | 'fusedSteps' | 'dropLast' | 'providerFallback' | 'measurePlacement'>>
      & { providers: ExecutionProviderName[]; dp?: DpConfig; deviceResident?: boolean },
    private readonly plan: Plan,
    private readonly decls: ParamDecl[],
    private readonly bufferDecls: BufferDecl[],
    private readonly keyBase: string,
    provider: ExecutionProviderName,
  ) {
    this.provider = provider;
    this.layout = makeLayout(decls);
    this.stateLayout = makeLayout(stateSlots(plan.opt).flatMap((slot) => decls.map((d) => ({ name: `${slot}:${d.name}`, shape: d.shape }))));
    this.params = initialValues(decls, cfg.seed);
    this.state = new Float32Array(this.stateLayout.length);
    this.bufferLayout = makeLayout(bufferDecls);
    this.buffers = initialBuffers(bufferDecls);
    this.dropoutRng = new Rng(cfg.seed ^ 0x2545f491);
    this.shuffle = new Rng(cfg.seed ^ 0x5bd1e995);
    this.dpNoise = cfg.dp ? (cfg.dp.noiseSeed !== undefined ? seededNormal(cfg.dp.noiseSeed) : cryptoNormal()) : null;
    this.resident = (cfg.deviceResident ?? provider === 'webgpu') ? new ResidentWeights([
      { layout: this.layout, feed: N.param, output: N.newParam },
      { layout: this.stateLayout, feed: (n) => N.state(...splitState(n)), output: (n) => N.newState(...splitState(n)) },
      { layout: this.bufferLayout, feed: N.buffer, output: N.newBuffer },
    ]) : null;
  }

  static async create(cfg: TrainConfig, example: SampleSet): Promise<Trainer> {
    const batchSize = positiveInt(cfg.batchSize, 'batchSize');
    const threads = positiveInt(cfg.threads ?? defaultThreads(), 'threads');
    const spec = parseModelSpec(cfg.model);
    const fusedSteps = cfg.dp ? 1 : positiveInt(cfg.fusedSteps ?? (spec.type === 'mlp' ? 8 : 1), 'fusedSteps');
    const opt = parseOptimizerSpec(cfg.optimizer);
    const shapes = Object.fromEntries(Object.entries(example.inputs).map(([k, v]) => [k, [...v.shape]]));
    const model = buildModel(spec, shapes);
    const lossSpec = cfg.loss ? parseLossSpec(cfg.loss) : defaultLoss(model.info);
    const plan: Plan = { model, loss: makeLoss(lossSpec, model.info), opt, proximalMu: cfg.proximalMu ?? 0 };
    const { params: decls, buffers } = declareParams(model);
    const providers = cfg.providers?.length ? [...cfg.providers] : [...DEFAULT_PROVIDERS];
    const keyBase = JSON.stringify(sessionKey(spec, lossSpec, opt, plan.proximalMu, model.info.inputs));
    if (cfg.dp) {
      const why = dpUnsupported(plan, buffers.length);
      if (why) throw dpError(why);
      if (!(cfg.dp.clip > 0) || !Number.isFinite(cfg.dp.clip)) throw dpError(`clip must be a positive number, got ${cfg.dp.clip}`);
      if (!(cfg.dp.noiseMultiplier >= 0) || !Number.isFinite(cfg.dp.noiseMultiplier)) throw dpError(`noiseMultiplier must be >= 0, got ${cfg.dp.noiseMultiplier}`);
    }
    const full = { batchSize, seed: cfg.seed, threads, fusedSteps, providers, dropLast: cfg.dropLast ?? false, providerFallback: cfg.providerFallback ?? 'cpu',
      measurePlacement: cfg.measurePlacement ?? false, ...(cfg.deviceResident !== undefined ? { deviceResident: cfg.deviceResident } : {}), ...(cfg.dp ? { dp: { ...cfg.dp } } : {}) };
    // Build the train-step session now: it fixes the provider and surfaces graph errors (and an unavailable provider) at creation.
    const first = await cachedSession(`${keyBase}|step|${batchSize}`, () => trainStep(plan, batchSize),
      { providers, fallback: full.providerFallback, threads, extras: { measurePlacement: full.measurePlacement } });
    // once per model and provider per process: 100 simulated peers of one model make one line, not 100
    const announce = `${keyBase}|${first.provider}`;
    if (!announced.has(announce)) {
      announced.add(announce);
      log.info({ provider: first.provider, model: spec.type, params: decls.reduce((a, d) => a + d.shape.reduce((x, y) => x * y, 1), 0) },
        `training ${spec.type} on ${first.provider}`);
    }
    const t = new Trainer(full, plan, decls, buffers, keyBase, first.provider);
    t.graphInfo.set(`step|${batchSize}`, t.report(`step|${batchSize}`, first, false));
    return t;
  }

  /** Which provider ran each graph this trainer used so far, and the CPU fallback of its nodes (issue 14.1). */
  get graphReports(): GraphReport[] { return [...this.graphInfo.values()].map((r) => ({ ...r, refused: [...r.refused] })); }

  /** True when params/state live in the sessions' tensors between host synchronisations (src/engine/device.ts). */
  get deviceResident(): boolean { return this.resident !== null; }

  getParameters(): Float32Array { return this.params.slice(); }

  setParameters(v: Float32Array): void {
    checkVector(this.layout, v, 'setParameters');
    this.params = v.slice();
    this.resident?.reset();
  }

  /** A copy of the buffers (BatchNorm running statistics), layout `bufferLayout`; empty for models without them. */
  getBuffers(): Float32Array { return this.buffers.slice(); }

  setBuffers(v: Float32Array): void {
    checkVector(this.bufferLayout, v, 'setBuffers');
    this.buffers = v.slice();
    this.resident?.reset();
  }

  setProximalAnchor(v: Float32Array | null): void {
    if (v) checkVector(this.layout, v, 'setProximalAnchor');
    this.anchor = v ? v.slice() : null;
  }

  /** Optimizer steps taken so far (drives Adam's bias correction and lr schedules). */
  get steps(): number { return this.stepCount; }

  async trainEpoch(data: SampleSet, opts: StepOptions = {}): Promise<{ loss: number; steps: number }> {
    const p = this.prepared(data);
    // DP-SGD: an epoch is n / batchSize Poisson-sampled steps (each sample used once per epoch in expectation)
    if (this.cfg.dp) return this.runDp(p, Math.max(1, Math.round(p.size / Math.min(this.cfg.batchSize, p.size))), opts);
    const order = (opts.rng ?? this.shuffle).permutation(p.size);
    const B = Math.min(this.cfg.batchSize, p.size);
    const batches: number[][] = [];
    for (let i = 0; i < p.size; i += B) batches.push(order.slice(i, i + B));
    if (this.cfg.dropLast && batches.length > 1 && batches[batches.length - 1].length < B) batches.pop();
    return this.runBatches(p, batches, opts);
  }

  async trainSteps(data: SampleSet, steps: number, opts: StepOptions = {}): Promise<{ loss: number; steps: number }> {
    const p = this.prepared(data);
    if (this.cfg.dp) return this.runDp(p, steps, opts);
    const rng = opts.rng ?? this.shuffle;
    const B = Math.min(this.cfg.batchSize, p.size);
    const batches: number[][] = [];
    let order = rng.permutation(p.size);
    let at = 0;
    for (let s = 0; s < steps; s++) {
      const b: number[] = [];
      while (b.length < B) {
        if (at === order.length) { order = rng.permutation(p.size); at = 0; }
        b.push(order[at++]);
      }
      batches.push(b);
    }
    return this.runBatches(p, batches, opts);
  }

  /** DP-SGD accounting so far: the phases (rate q, noise multiplier, steps) the accountant composes. */
  get privacyPhases(): DpPhase[] { return this.phases.map((p) => ({ ...p })); }

  /** The DP configuration (clip, noise multiplier), or null without DP. */
  get dpConfig(): DpConfig | null { return this.cfg.dp ? { ...this.cfg.dp } : null; }

  private async runDp(p: Prepared, steps: number, opts: StepOptions): Promise<{ loss: number; steps: number }> {
    this.alive();
    if (this.busy) {
      throw new CohortError('TRAINER_BUSY', 'this trainer is already training', 'await the running trainEpoch/trainSteps before starting another');
    }
    this.busy = true;
    try {
      let lossSum = 0, samples = 0;
      for (let s = 0; s < steps; s++) {
        const { loss, size } = await this.dpStep(p, opts.rng ?? this.shuffle, opts.lr);
        lossSum += loss * size; samples += size;
        opts.onStep?.(this.stepCount, loss);
      }
      await this.syncHost();
      return { loss: lossSum / Math.max(samples, 1), steps };
    } finally {
      this.busy = false;
    }
  }

  /** One DP-SGD step: Poisson draw at q = B / n, per-sample clipped gradients, Gaussian noise (src/engine/dp.ts). */
  private async dpStep(p: Prepared, rng: Rng, lr?: number): Promise<{ loss: number; size: number }> {
    const dp = this.cfg.dp as DpConfig;
    const n = p.size;
    const B = Math.min(this.cfg.batchSize, n);
    const q = B / n;
    const drawn: number[] = [];
    for (let i = 0; i < n; i++) if (rng.next() < q) drawn.push(i);
    const S = Math.max(dpSlots(B, n), drawn.length);
    const idx = Array.from({ length: S }, (_, k) => drawn[k] ?? 0);
    const mask = Float32Array.from({ length: S }, (_, k) => (k < drawn.length ? 1 : 0));
    const dpVariant = `dp|${S}|${dp.clip}`;
    const dpSession = await this.session(dpVariant, () => dpTrainStep(this.plan, S, dp.clip));
    const { session } = dpSession;
    const feeds = batchFeeds(p, [idx], [S], N);
    this.weightFeeds(feeds);
    const h = stepHyper(this.plan.opt, this.stepCount, lr);
    for (const name of hyperNames(this.plan.opt)) feeds[N.hyper(name)] = new ort.Tensor('float32', Float32Array.of(h[name]), []);
    if (session.inputNames.includes(N.seed)) feeds[N.seed] = new ort.Tensor('int64', this.seeds(1), []);
    feeds[DP.mask] = new ort.Tensor('float32', mask, [S]);
    feeds[DP.scale] = new ort.Tensor('float32', Float32Array.of(1 / (q * n)), []);
    const std = dp.noiseMultiplier * dp.clip;
    const noise = this.dpNoise as () => number;
    for (const e of this.layout.entries) {
      const z = new Float32Array(e.length);
      for (let i = 0; i < z.length; i++) z[i] = std * noise();
      feeds[DP.noise(e.name)] = new ort.Tensor('float32', z, e.shape);
    }
    const out = await this.run(dpVariant, dpSession, feeds);
    const loss = (out.loss.data as Float32Array)[0];
    this.accept(out, [loss]);
    const last = this.phases[this.phases.length - 1];
    if (last && last.q === q && last.sigma === dp.noiseMultiplier) last.steps++;
    else this.phases.push({ q, sigma: dp.noiseMultiplier, steps: 1 });
    return { loss, size: drawn.length };
  }

  private async runBatches(p: Prepared, batches: number[][], opts: StepOptions): Promise<{ loss: number; steps: number }> {
    this.alive();
    // Steps read and write the same flat vectors: two overlapping calls would interleave their updates.
    if (this.busy) {
      throw new CohortError('TRAINER_BUSY', 'this trainer is already training', 'await the running trainEpoch/trainSteps before starting another');
    }
    this.busy = true;
    try {
      const r = await this.runBatchesNow(p, batches, opts);
      await this.syncHost();
      return r;
    } catch (e) {
      // the steps accepted before the failure reach the host, as on the copying path (a non-finite loss leaves the last good step)
      await this.syncHost().catch(() => undefined);
      throw e;
    } finally {
      this.busy = false;
    }
  }

  private async runBatchesNow(p: Prepared, batches: number[][], opts: StepOptions): Promise<{ loss: number; steps: number }> {
    let lossSum = 0, samples = 0, done = 0;
    const note = (loss: number, n: number): void => {
      lossSum += loss * n; samples += n;
      opts.onStep?.(this.stepCount, loss);
    };
    const K = this.cfg.fusedSteps;
    let i = 0;
    while (K > 1 && i + K <= batches.length && batches.slice(i, i + K).every((b) => b.length === batches[i].length)) {
      const losses = await this.fused(p, batches.slice(i, i + K), opts.lr);
      losses.forEach((l, k) => note(l, batches[i + k].length));
      i += K; done += K;
    }
    for (; i < batches.length; i++, done++) note(await this.single(p, batches[i], opts.lr), batches[i].length);
    return { loss: lossSum / Math.max(samples, 1), steps: done };
  }

  private session(variant: string, build: () => Uint8Array): Promise<CachedSession> {
    const deviceOutputs = this.resident && this.provider === 'webgpu' && !variant.startsWith('eval') && !variant.startsWith('grad')
      ? this.resident.outputNames() : undefined;
    return cachedSession(`${this.keyBase}|${variant}`, build, { providers: this.cfg.providers, fallback: this.cfg.providerFallback,
      threads: this.cfg.threads, extras: { measurePlacement: this.cfg.measurePlacement, ...(deviceOutputs ? { deviceOutputs } : {}) } });
  }

  /** Run a graph variant and note which provider ran it (and, the first time, its node placement). */
  private async run(variant: string, c: CachedSession, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const out = await c.session.run(feeds);
    const known = this.graphInfo.get(variant);
    if (!known || (known.nodes === undefined && (c.profile || c.placement))) this.graphInfo.set(variant, this.report(variant, c, true));
    return out;
  }

  /** `afterRun`: the session has run, so its profile (if any) holds the placement (read before a run, it would be empty). */
  private report(variant: string, c: CachedSession, afterRun: boolean): GraphReport {
    const placement = afterRun ? notePlacement(c) : c.placement;
    return { graph: variant, provider: c.provider, refused: [...c.refused], ...(placement ? { nodes: placement.nodes } : {}),
      cpuFallbackNodes: placement ? cpuFallbackNodes(c.provider, placement) : c.provider === 'cpu' ? 0 : null };
  }

  /** Host vectors <- resident tensors (end of each training call: averaging, checkpoints and getParameters read the host). */
  private async syncHost(): Promise<void> {
    if (!this.resident) return;
    try {
      await this.resident.sync([this.params, this.state, this.buffers]);
      this.syncedSteps = this.stepCount;
    } catch (e) {
      this.stepCount = this.syncedSteps; // the host holds the weights of the last synchronisation: count its steps
      throw e;
    }
  }

  /** Params, state and (FedProx) anchors as feeds: zero-copy views of the flat vectors. */
  private weightFeeds(feeds: Record<string, ort.Tensor>): void {
    this.modelFeeds(feeds);
    for (const e of this.stateLayout.entries) {
      const [slot, name] = splitState(e.name);
      feeds[N.state(slot, name)] = new ort.Tensor('float32', view(this.state, e), e.shape);
    }
    this.resident?.feed(feeds);
    if (this.plan.proximalMu > 0) {
      const a = this.anchor ?? this.params;
      for (const e of this.layout.entries) feeds[N.anchor(e.name)] = new ort.Tensor('float32', view(a, e), e.shape);
    }
  }

  private async single(p: Prepared, idx: number[], lr?: number): Promise<number> {
    const B = idx.length;
    const c = await this.session(`step|${B}`, () => trainStep(this.plan, B));
    const { session } = c;
    const feeds = batchFeeds(p, [idx], [B], N);
    this.weightFeeds(feeds);
    const h = stepHyper(this.plan.opt, this.stepCount, lr);
    for (const name of hyperNames(this.plan.opt)) feeds[N.hyper(name)] = new ort.Tensor('float32', Float32Array.of(h[name]), []);
    if (session.inputNames.includes(N.seed)) feeds[N.seed] = new ort.Tensor('int64', this.seeds(1), []);
    const out = await this.run(`step|${B}`, c, feeds);
    const loss = (out.loss.data as Float32Array)[0];
    this.accept(out, [loss]);
    return loss;
  }

  private async fused(p: Prepared, chunks: number[][], lr?: number): Promise<number[]> {
    const K = chunks.length, B = chunks[0].length;
    const c = await this.session(`loop|${B}|${K}`, () => trainLoop(this.plan, B, K, this.decls, this.bufferDecls));
    const { session } = c;
    const feeds = batchFeeds(p, chunks, [K, B], N);
    this.weightFeeds(feeds);
    const hs = chunks.map((_, k) => stepHyper(this.plan.opt, this.stepCount + k, lr));
    for (const name of hyperNames(this.plan.opt)) feeds[N.hyper(name)] = new ort.Tensor('float32', Float32Array.from(hs.map((h) => h[name])), [K]);
    if (session.inputNames.includes(N.seed)) feeds[N.seed] = new ort.Tensor('int64', this.seeds(K), [K]);
    const out = await this.run(`loop|${B}|${K}`, c, feeds);
    const losses = [...(out.losses.data as Float32Array)];
    const bad = losses.findIndex((l) => !Number.isFinite(l));
    // A chunk that diverged at step k is rejected whole; replay its k good steps one by one so the weights kept are
    // those of the last good step, not of the chunk's start. The replayed steps then raise the error at step k.
    if (bad >= 0) for (const c of chunks) await this.single(p, c, lr);
    this.accept(out, losses);
    return losses;
  }

  /** Params and buffers as feeds (zero-copy views). */
  private modelFeeds(feeds: Record<string, ort.Tensor>): void {
    for (const e of this.layout.entries) feeds[N.param(e.name)] = new ort.Tensor('float32', view(this.params, e), e.shape);
    for (const e of this.bufferLayout.entries) feeds[N.buffer(e.name)] = new ort.Tensor('float32', view(this.buffers, e), e.shape);
    this.resident?.feed(feeds);
  }

  /** Fresh dropout seeds from the trainer's seeded stream (one per step). */
  private seeds(n: number): BigInt64Array {
    return BigInt64Array.from({ length: n }, () => BigInt(this.dropoutRng.nextU32()));
  }

  private stateHash(): string {
    return `${this.stateLayout.hash}:${this.bufferLayout.hash}`;
  }

  /** Copy a run's new params/state into the flat vectors, unless a loss or an updated value is not finite. */
  private accept(out: ort.InferenceSession.OnnxValueMapType, losses: number[]): void {
    const bad = losses.findIndex((l) => !Number.isFinite(l));
    const nonFinite = (why: string): CohortError => new CohortError('NON_FINITE_LOSS', `training diverged at step ${this.stepCount + Math.max(bad, 0) + 1}: ${why}`,
      'lower the learning rate, enable gradient clipping (clipNorm), or check the data for NaN/Inf values; the weights of the last good step were kept');
    if (bad >= 0) throw nonFinite(`the loss is ${losses[bad]}`);
    if (this.resident) { this.resident.take(out); this.stepCount += losses.length; return; }
    const newP = this.layout.entries.map((e) => out[N.newParam(e.name)].data as Float32Array);
    const newS = this.stateLayout.entries.map((e) => { const [slot, name] = splitState(e.name); return out[N.newState(slot, name)].data as Float32Array; });
    const newB = this.bufferLayout.entries.map((e) => out[N.newBuffer(e.name)].data as Float32Array);
    for (const arr of [...newP, ...newS, ...newB]) {
      for (let i = 0; i < arr.length; i++) if (!Number.isFinite(arr[i])) throw nonFinite('an updated weight is not finite');
    }
    this.layout.entries.forEach((e, i) => this.params.set(newP[i], e.offset));
    this.stateLayout.entries.forEach((e, i) => this.state.set(newS[i], e.offset));
    this.bufferLayout.entries.forEach((e, i) => this.buffers.set(newB[i], e.offset));
    this.stepCount += losses.length;
  }

  async evaluate(data: SampleSet): Promise<Metrics> {
    const p = this.prepared(data);
    const r = await this.forwardAll(p);
    return computeMetrics(this.plan, p, r.loss, r.prob, r.markers);
  }

  /** evaluate() plus the held-out n and each metric's 95% interval (src/engine/evaluate.ts: computeIntervals), one forward pass. */
  async evaluateWithIntervals(data: SampleSet, opts: BootstrapOptions = {}): Promise<{ metrics: Metrics; evaluation: Evaluation }> {
    const p = this.prepared(data);
    const r = await this.forwardAll(p);
    return { metrics: computeMetrics(this.plan, p, r.loss, r.prob, r.markers), evaluation: computeIntervals(this.plan, p, r.prob, r.markers, opts) };
  }

  /** Probabilities for every sample: `prob` as the exported model's output (+ `markers` for the multi-task U-Net). */
  async predict(data: SampleSet): Promise<{ prob: Float32Array; markers?: Float32Array }> {
    const r = await this.forwardAll(this.prepared(data));
    return r.markers ? { prob: r.prob, markers: r.markers } : { prob: r.prob };
  }

  private async forwardAll(p: Prepared): Promise<{ loss: number; prob: Float32Array; markers?: Float32Array }> {
    this.alive();
    const B = Math.min(this.cfg.batchSize, p.size);
    const probs: Float32Array[] = [];
    const markers: Float32Array[] = [];
    let lossSum = 0;
    for (let i = 0; i < p.size; i += B) {
      const idx = Array.from({ length: Math.min(B, p.size - i) }, (_, k) => i + k);
      const c = await this.session(`eval|${idx.length}`, () => evalGraph(this.plan, idx.length));
      const feeds = batchFeeds(p, [idx], [idx.length], N);
      this.modelFeeds(feeds);
      const out = await this.run(`eval|${idx.length}`, c, feeds);
      lossSum += (out.loss.data as Float32Array)[0] * idx.length;
      probs.push(out.prob.data as Float32Array);
      if (out.markers_prob) markers.push(out.markers_prob.data as Float32Array);
    }
    return { loss: lossSum / p.size, prob: concatFloat32(probs), ...(markers.length ? { markers: concatFloat32(markers) } : {}) };
  }

  /** Loss and full-batch gradient (flat, layout order) at the current parameters, over all of `data` as one batch. */
  async lossAndGradient(data: SampleSet): Promise<{ loss: number; gradient: Float32Array }> {
    this.alive();
    const p = this.prepared(data);
    const c = await this.session(`grad|${p.size}`, () => gradientGraph(this.plan, p.size));
    const { session } = c;
    const feeds = batchFeeds(p, [Array.from({ length: p.size }, (_, i) => i)], [p.size], N);
    this.modelFeeds(feeds);
    // a fixed dropout seed: repeated calls at the same parameters see the same function (finite-difference checks)
    if (session.inputNames.includes(N.seed)) feeds[N.seed] = new ort.Tensor('int64', BigInt64Array.of(0n), []);
    const out = await this.run(`grad|${p.size}`, c, feeds);
    const gradient = new Float32Array(this.layout.length);
    for (const e of this.layout.entries) gradient.set(out[`g_${e.name}`].data as Float32Array, e.offset);
    return { loss: (out.loss.data as Float32Array)[0], gradient };
  }

  /**
   * The deployable model (forward + probabilities, weights as initializers); input names as the data's, output `prob`
   * (+ `markers_prob`). The batch dimension is symbolic (N) unless a fixed `batch` is asked for.
   */
  exportOnnx(opts: { batch?: number } = {}): Uint8Array {
    return exportGraph(this.plan, this.decls, this.params, this.bufferDecls, this.buffers,
      opts.batch === undefined ? 'dynamic' : positiveInt(opts.batch, 'batch'));
  }

  checkpoint(): Uint8Array {
    const state = new Float32Array(this.state.length + this.buffers.length);
    state.set(this.state);
    state.set(this.buffers, this.state.length);
    return encodeCheckpoint({ layoutHash: this.layout.hash, stateHash: this.stateHash(), step: this.stepCount, params: this.params, state });
  }

  restore(bytes: Uint8Array): void {
    const c = decodeCheckpoint(bytes);
    if (c.layoutHash !== this.layout.hash || c.stateHash !== this.stateHash()) {
      throw new CohortError('LAYOUT_MISMATCH', 'the checkpoint belongs to a different model or optimizer (layout hash differs)',
        'restore a checkpoint saved by a Trainer with the same model spec and optimizer type');
    }
    checkVector(this.layout, c.params, 'checkpoint parameters');
    this.params = c.params;
    this.state = c.state.slice(0, this.stateLayout.length);
    this.buffers = c.state.slice(this.stateLayout.length);
    this.stepCount = c.step;
    this.syncedSteps = c.step;
    this.resident?.reset();
  }

  /** Sessions are shared process-wide (see releaseSessions in sessions.ts); this only drops the trainer's own state. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.resident?.reset(); // webgpu: free the trainer's device buffers now, not whenever the GC finalises them
    this.params = new Float32Array(0);
    this.state = new Float32Array(0);
    this.buffers = new Float32Array(0);
  }

  /** Model facts for callers (output shape, kind, markers). */
  get modelInfo(): Plan['model']['info'] { return this.plan.model.info; }

  private prepared(data: SampleSet): Prepared {
    return prepare(data, this.plan.model.info, this.plan.loss);
  }

  private alive(): void {
    if (this.disposed) throw new CohortError('TRAINER_DISPOSED', 'this trainer was disposed', 'create a new Trainer');
  }
}

function sessionKey(spec: ResolvedModelSpec, loss: ResolvedLossSpec, opt: ResolvedOptimizerSpec, mu: number,
  inputs: Readonly<Record<string, readonly number[]>>): unknown {
  // lr and its schedule are graph inputs: trainers that differ only there share sessions.
  const { lr: _lr, schedule: _s, ...graphOpt } = opt;
  return { spec, loss, opt: graphOpt, mu, inputs };
}

/** Standard normal draws from a seeded stream (reproducible simulations). */
function seededNormal(seed: number): () => number {
  const rng = new Rng(seed ^ 0x6a09e667);
  return () => rng.normal();
}

/** Standard normal draws from the OS CSPRNG (Box-Muller on 32-bit uniforms in (0, 1)). */
function cryptoNormal(): () => number {
  const buf = new Uint32Array(1024);
  let at = buf.length;
  let spare: number | null = null;
  const u = (): number => {
    if (at === buf.length) { randomFillSync(buf); at = 0; }
    return (buf[at++] + 0.5) / 4294967296;
  };
  return () => {
    if (spare !== null) { const v = spare; spare = null; return v; }
    const r = Math.sqrt(-2 * Math.log(u())), t = 2 * Math.PI * u();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

function splitState(name: string): [string, string] {
  const i = name.indexOf(':');
  return [name.slice(0, i), name.slice(i + 1)];
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) {
    throw new CohortError('BAD_TRAIN_CONFIG', `${what} must be a positive integer, got ${v}`, `set ${what} to 1 or more`);
  }
  return v;
}
