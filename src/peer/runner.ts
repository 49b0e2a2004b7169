/**
 * One scenario's run on this peer: a training worker (worker.ts), an averaging node (src/averaging) over a PeerTransport, and
 * the per-round bookkeeping — at the end of every round: evaluate the current model on the held-out local data, write an atomic
 * checkpoint (LevelDB batch), and gossip the site's progress. After the last round: the local-only baseline, the ONNX export
 * (kept in the store for `cohort scenario export`), and `done`.
 * Resume after a crash: the last checkpoint is restored and the node rejoins, pulling the current model from a neighbour.
 */
import { Worker } from 'node:worker_threads';
import { createNode } from '../averaging/factory.ts';
import type { AveragingNode } from '../averaging/node.ts';
import type { AveragingMessage, AveragingTransport, LocalLearner, NodeStats } from '../averaging/types.ts';
import { attackTransport } from '../sim/attacks/index.ts';
import { testAttackFromEnv } from '../sim/attacks/test-hook.ts';
import type { Evaluation, Metrics } from '../engine/index.ts';
import type { GraphReport } from '../engine/trainer.ts';
import type { CohortNode } from '../net/node.ts';
import type { SecureProgress, SiteProgress } from '../scenario/lifecycle.ts';
import type { AuditLog } from '../store/audit.ts';
import { signSuspicion, suspicionAudit, suspicionReport, type SignedSuspicion } from '../scenario/suspicion.ts';
import type { Identity } from '../net/identity.ts';
import { loadRound, saveRound, type RoundState } from '../store/checkpoints.ts';
import { accountingOf, claimSteps, resumeAccounting, totalSteps } from '../privacy/dp-resume.ts';
import type { DpPhase } from '../privacy/accountant.ts';
import type { DpPlan } from '../privacy/dp-plan.ts';
import type { Store } from '../store/db.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import type { DaemonConfig } from './config.ts';

/** The training worker's entry: the compiled worker.js next to this file in dist/, or (running the sources) a boot file that loads worker.ts through tsx. */
const WORKER_ENTRY = new URL(import.meta.url.endsWith('.ts') ? './worker-boot.mjs' : './worker.js', import.meta.url);
import type { LocalData } from './datasets.ts';
import type { RunnablePlan } from './plan.ts';
import { PeerTransport } from './transport.ts';
import { NetSecureSession } from '../averaging/secure/net-session.ts';
import { RejoinSession, RekeyResponder, roundZeroKey, type RejoinOptions } from '../averaging/secure/rejoin.ts';
import { rejoinAfterBurn } from '../averaging/secure/burn.ts';
import type { PairKeys } from '../averaging/secure/masking.ts';
import type { SecureDpsgdNode, SecureStats } from '../averaging/secure/node.ts';
import { roundsToRun } from '../scenario/participants.ts';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker.ts';
import type { StatsMessage } from '../averaging/message.ts';
import type { AgreedStandardiser } from '../data/standardiser-stats.ts';
import { readStandardiser, saveStandardiser, StatsExchange } from './stats-exchange.ts';
import { estimateScenario, localShapes, MEMORY_EXIT_CODE } from './admission.ts';

const log = logger('peer:runner');

type Ready = Extract<WorkerReply, { op: 'ready' }>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Request/reply over the worker's message port, transferring vectors. */
class WorkerClient {
  private rid = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<Ready>;
  /** The worker's graph reports (provider per graph, refusals, CPU-fallback nodes), each time they change. */
  onGraphs: (graphs: GraphReport[]) => void = () => undefined;

  constructor(readonly worker: Worker) {
    this.ready = new Promise<Ready>((resolve, reject) => {
      worker.once('error', reject);
      const first = (r: WorkerReply): void => {
        if (r.rid !== 0) return;
        worker.off('message', first);
        if (r.op === 'ready') resolve(r);
        else reject(new CohortError((r.op === 'error' && r.code) || 'WORKER_FAILED', `training worker could not start: ${r.op === 'error' ? r.message : r.op}`,
          (r.op === 'error' && r.hint) || 'check the dataset path and the manifest\'s model against the data'));
      };
      worker.on('message', first);
    });
    worker.on('message', (r: WorkerReply) => {
      if (r.op === 'graphs') return void this.onGraphs(r.graphs);
      const p = this.pending.get(r.rid);
      if (!p || r.rid === 0) return;
      this.pending.delete(r.rid);
      if (r.op === 'error') p.reject(new CohortError(r.code ?? 'WORKER_ERROR', r.message));
      else p.resolve(r);
    });
    worker.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('training worker exited'));
      this.pending.clear();
    });
  }

  /** Resolves when no request is in flight (or after `ms`); the caller sends no new ones meanwhile. */
  async drain(ms: number): Promise<void> {
    const end = Date.now() + ms;
    // a worker still building its session counts as busy too
    await Promise.race([this.ready.then(() => undefined, () => undefined), new Promise((r) => setTimeout(r, ms))]);
    while (this.pending.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  }

  call(req: DistributiveOmit<WorkerRequest, 'rid'>): Promise<WorkerReply> {
    const rid = this.rid++;
    const full = { ...req, rid } as WorkerRequest;
    const transfer = 'params' in full ? [full.params.buffer as ArrayBuffer] : 'bytes' in full ? [full.bytes.buffer as ArrayBuffer] : [];
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { resolve, reject });
      this.worker.postMessage(full, transfer);
    });
  }
}

/** The averaging layer's view of the worker's Trainer; parameters are kept here between calls. */
class WorkerLearner implements LocalLearner {
  lastLoss = Number.NaN;
  constructor(private readonly client: WorkerClient, private params: Float32Array, readonly sampleCount: number) {}
  getParameters(): Float32Array { return this.params.slice(); }
  setParameters(v: Float32Array): void { this.params = v.slice(); }
  /** Local training calls that completed (the rounds this peer really trained in, with the ones before a restart). */
  trained = 0;
  /** The worker's heap + ArrayBuffers after its last training call (for /metrics). */
  memoryBytes: number | undefined;
  onTrained: (seconds: number) => void = () => undefined;
  /** DP-SGD: the epsilon this peer's worker has spent so far (its accountant over the steps taken); undefined without DP. */
  epsilon: number | undefined;
  /** DP-SGD: the accountant's phases behind `epsilon` (steps before a restart included), and whether the last round was capped by the budget. */
  dpPhases: DpPhase[] | undefined;
  dpCapped = false;
  /** Awaited before every training call (DP: the claim of the steps it may take is on disk first). */
  beforeTrain: () => Promise<void> = async () => undefined;
  onDpCapped: () => void = () => undefined;
  async train(): Promise<{ loss: number; steps: number }> {
    await this.beforeTrain();
    const t0 = performance.now();
    const r = await this.client.call({ op: 'train', params: this.params.slice() });
    if (r.op !== 'trained') throw new Error(`unexpected worker reply ${r.op}`);
    if (r.dpPhases) { this.dpPhases = r.dpPhases; this.dpCapped = r.dpCapped === true; }
    if (r.dpCapped) this.onDpCapped();
    this.params = r.params;
    this.lastLoss = r.loss;
    this.trained++;
    this.memoryBytes = r.memoryBytes;
    if (r.epsilon !== undefined) this.epsilon = r.epsilon;
    this.onTrained((performance.now() - t0) / 1000);
    return { loss: r.loss, steps: r.steps };
  }
}

export interface RunHost {
  readonly cfg: DaemonConfig;
  readonly node: CohortNode;
  readonly store: Store;
  readonly audit: AuditLog;
  readonly data: LocalData;
  /** This peer's key: signs its suspicion reports (robust aggregation); absent: none published. */
  readonly identity?: Identity;
  publishProgress(id: string, p: SiteProgress): Promise<void>;
  /** Rounds to run when the launcher's stopping rule fired (else undefined: the manifest's maximum). */
  stopAt(id: string): number | undefined;
  /** The run cannot continue (its worker died): the daemon reports this peer's failure. */
  failed(id: string, e: unknown): void;
  /** The participant rule (src/scenario/participants.ts): who takes part in `round`, and in the run at all. */
  participantsAt(id: string, round: number): readonly string[];
  participants(id: string): readonly string[];
  /** The averaging rule refused a message from `peer` (unsolicited pull reply, replayed round, non-finite model...). */
  refused(id: string, peer: string, reason: string): void;
  /** Local training of one round took `seconds` (Prometheus histogram, src/peer/metrics.ts). */
  roundTrained?(id: string, seconds: number): void;
  /** The training worker's latest graph reports (which provider ran each graph; `cohort status`). */
  graphsReported?(id: string, graphs: GraphReport[]): void;
}

export interface RunStatus { readonly round: number; readonly loss?: number; readonly metric?: number; readonly provider?: string; readonly done: boolean }

export class ScenarioRun {
  private client: WorkerClient | undefined;
  private transport: PeerTransport | undefined;
  private averaging: AveragingNode | undefined;
  private learner: WorkerLearner | undefined;
  private roundTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private stopped = false;
  status: RunStatus = { round: -1, done: false };

  private preparing: Promise<Ready> | undefined;
  /** Shared with the worker: 1 = stop after the current step (cancel at any moment never cuts an onnxruntime call). */
  private readonly cancel = new SharedArrayBuffer(4);
  private exited = false;
  /** The worker has loaded the data and built the model (the readiness barrier: heartbeats carry it). */
  workerReady = false;
  private gone: Promise<void> | undefined;
  /** Rounds trained before a restart (from the checkpoint's state). */
  private trainedBefore = 0;
  private attemptsReset = false;
  private run: { startAt: number } | undefined;
  private heldOut: number | undefined;
  /** The worker's memory budget and the process's resident memory when it became ready: the native-memory watchdog's input. */
  private memory: { budgetBytes: number; baselineRss?: number } | undefined;

  constructor(private readonly host: RunHost, readonly id: string, private readonly plan: RunnablePlan) {}

  get begun(): boolean {
    return this.run !== undefined;
  }

  /** Load the data and build the model in the worker ahead of the start (called at approval), so that round 0 is not missed. */
  prepare(): Promise<Ready> {
    this.preparing ??= (async () => {
      const ds = await this.host.data.get(this.plan.dataset);
      if (!ds?.path) throw new CohortError('NO_MATCHING_DATA', `no local dataset "${this.plan.dataset}" with a path`, 'add it to the data section of the peer config');
      // the worker's memory budget: twice the admission estimate (at least 512 MiB), or the configured heap limit
      let estimate = 0;
      try {
        estimate = estimateScenario(this.plan, localShapes(this.plan, ds), { peers: Math.max(2, this.host.participants(this.id).length) }).memory_bytes;
      } catch { /* the worker reports a model that does not fit the data */ }
      const admission = this.host.cfg.admission;
      const budget = admission.workerHeapMiB > 0 ? admission.workerHeapMiB * 1024 ** 2 : Math.max(512 * 1024 ** 2, 2 * estimate);
      this.memory = { budgetBytes: budget };
      const init: WorkerInit = { manifest: this.plan.manifest, dataPath: ds.path, dataOptions: ds.options, threads: this.host.cfg.compute.threads, providers: this.host.cfg.compute.providers,
        providerFallback: this.host.cfg.compute.providerFallback,
        cancel: this.cancel, memoryBudgetBytes: budget };
      this.client = new WorkerClient(new Worker(WORKER_ENTRY, { workerData: init, resourceLimits: { maxOldGenerationSizeMb: Math.ceil(budget / 1024 ** 2) } }));
      this.client.onGraphs = (graphs) => this.host.graphsReported?.(this.id, graphs);
      let lastError: Error | undefined;
      const failure = (code?: number): CohortError => (code === MEMORY_EXIT_CODE || (lastError as { code?: string } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new CohortError('WORKER_MEMORY_LIMIT', `the training worker exceeded its memory budget of ${(budget / 1024 ** 2).toFixed(0)} MiB and was stopped; the daemon goes on`, 'lower the model or batch size, or raise admission.workerHeapMiB in cohort.json')
        : new CohortError('WORKER_DIED', `the training worker exited (code ${code ?? '?'})${lastError ? `: ${lastError.message}` : ''}`, 'see the daemon log; out of memory is the usual cause'));
      this.client.worker.on('error', (e) => { lastError = e; });
      this.gone = new Promise<void>((r) => this.client!.worker.once('exit', () => r()));
      this.client.worker.once('exit', (code) => {
        this.exited = true;
        if (!this.stopped) this.host.failed(this.id, failure(code));
      });
      // a worker that dies while loading says why (its heap limit, usually) instead of a bare worker error
      return this.client.ready.then((r) => { this.workerReady = true; this.scaleMode = r.inputScale.mode; this.memory = { budgetBytes: budget, baselineRss: process.memoryUsage.rss() }; return r; }, (e: unknown) => { throw lastError && e === lastError ? failure() : e; });
    })();
    return this.preparing;
  }

  async start(run: { startAt: number }): Promise<void> {
    this.run = run;
    // crash-loop guard: every start counts; a round that completes clears it. A run that died (with its worker or the whole
    // daemon) maxWorkerFailures times without completing a round is not resumed again.
    const key = `attempts/${this.id}`;
    const attempts = Number(await this.host.store.scenarios.get(key) ?? 0);
    if (attempts >= this.host.cfg.admission.maxWorkerFailures) {
      throw new CohortError('CRASH_LOOP', `this peer's run of the scenario died ${attempts} times without completing a round; it is not resumed`, 'see the daemon log; the admission limits in cohort.json protect against models that do not fit');
    }
    await this.host.store.scenarios.put(key, attempts + 1);
    log.info({ scenario: this.id.slice(0, 12), attempt: attempts + 1 }, 'starting this peer\'s run');
    const ready = await this.prepare();
    if (this.stopped || !this.client) return;
    await this.scaleInputs(ready, run.startAt);
    if (this.stopped) return;
    const lateMs = Date.now() - run.startAt;
    log.info({ scenario: this.id.slice(0, 12), provider: ready.provider, samples: ready.sampleCount, lateMs }, 'training worker ready');
    if (lateMs > 0) log.warn({ scenario: this.id.slice(0, 12), lateMs }, 'training worker became ready after round 0 started: this peer joins late (raise launch.startDelayMs)');
    const resumed = await loadRound(this.host.store, this.id);
    let params = ready.params;
    if (resumed) {
      this.trainedBefore = Number(resumed.state.roundsTrained ?? 0);
      const r = await this.client.call({ op: 'restore', bytes: resumed.bytes });
      if (r.op === 'restored') params = r.params;
      log.info({ scenario: this.id.slice(0, 12), round: resumed.state.round }, 'resumed from checkpoint');
    }
    this.learner = new WorkerLearner(this.client, params, ready.sampleCount);
    this.learner.onTrained = (sec) => this.host.roundTrained?.(this.id, sec);
    // DP-SGD: the accountant continues from the steps before a restart (checkpoint or later claim: src/privacy/dp-resume.ts)
    if (ready.dp && this.plan.manifest.privacy?.dp) await this.resumeDp(ready.dp, resumed?.state);
    this.heldOut = ready.testCount;
    const m = this.plan.manifest;
    // privacy.secure with a consortium standardiser: the transport and key setup began before the statistics exchange (reused)
    if (!this.secure || !this.transport) this.transport = this.makeTransport(run.startAt);
    const transport = this.transport;
    const secure = m.privacy?.secure ? this.secure ?? this.secureSession(ready.layoutHash, Boolean(resumed)) : undefined;
    const wire = this.testAdversary(transport, ready.params.length);
    // secure: joiners' fresh keys are answered and swapped in below the session (src/averaging/secure/rejoin.ts)
    const rekey = secure ? this.rekeyResponder(secure, ready.layoutHash) : undefined;
    this.averaging = createNode(m.averaging.algorithm, secure && rekey ? secure.wrap(rekey.wrap(wire)) : wire, this.learner, {
      scenario: this.id, layoutHash: ready.layoutHash, rounds: m.rounds.max, roundMs: m.averaging.roundMs,
      deadlineMs: m.averaging.deadlineMs ?? Math.round(m.averaging.roundMs * 0.8), codec: m.compression.codec,
      codecOptions: { blockSize: m.compression.blockSize, topkFraction: m.compression.topkFraction },
      seed: m.training.seed ^ hashSeed(this.host.node.peerId.toString()), weighting: m.averaging.weighting, train: true,
      proximal: m.training.proximalMu > 0,
      robust: { aggregator: m.averaging.aggregator, trim: m.averaging.trim, radius: m.averaging.clipRadius },
    }, { fanout: m.averaging.fanout, s: m.averaging.s, gamma: m.averaging.gamma, receivers: m.averaging.receivers, ...(secure ? { secure } : {}) });
    this.averaging.onReject = (reason, from) => this.host.refused(this.id, from, reason);
    if (rekey) rekey.node = this.averaging as SecureDpsgdNode;
    // a dropped sender whose holders could not give t shares: that round is not mixed here (docs/privacy.md, "Holder sets")
    if (secure) (this.averaging as SecureDpsgdNode).onNotMixed = (round, reason, dealers) => {
      if (reason === 'holders-short') log.warn({ scenario: this.id.slice(0, 12), round, dealers }, 'secure averaging: fewer than t share holders of a dropped sender answered; this round is not mixed here');
    };
    // a holder released a share of this peer's key (a receiver found it late): never mask with it again; rejoin with a fresh one
    if (secure && rekey) (this.averaging as SecureDpsgdNode).onBurnt = (round, holder, receiver) => this.keyBurnt(round, holder, receiver, rekey, wire, ready.layoutHash);
    // back from a restart: no masked model leaves this peer before its fresh key's round r0 (decided by the RejoinSession)
    if (secure instanceof RejoinSession) (this.averaging as SecureDpsgdNode).sendsFrom = Number.POSITIVE_INFINITY;
    // the key setup runs now, before round 0 (round 0 waits for it); incomplete at its deadline: this peer's run fails
    secure?.setup().catch((e: unknown) => { if (!this.stopped) this.host.failed(this.id, e); });
    this.status = { round: resumed?.state.round ?? -1, provider: ready.provider, done: false };
    // back from a crash, or joining more than a round late: take the current model from a neighbour instead of a stale one
    if (resumed || lateMs > m.averaging.roundMs) this.averaging.rejoin();
    else this.averaging.start();
    this.scheduleRoundEnd();
  }

  /**
   * DP-SGD on this peer (src/privacy/dp-resume.ts): after a restart the worker continues the accountant from the steps counted
   * before it (audited); before every round the steps it may take are claimed on disk; a round cut short by the budget is audited once.
   */
  private async resumeDp(plan: DpPlan, checkpoint: RoundState | undefined): Promise<void> {
    const learner = this.learner!;
    const delta = this.plan.manifest.privacy!.dp!.delta;
    const prior = await resumeAccounting(this.host.store, this.id, checkpoint, delta);
    learner.dpPhases = [...prior.phases];
    if (prior.steps > 0) {
      const r = await this.client!.call({ op: 'dpPrior', phases: [...prior.phases] });
      if (r.op === 'dpResumed') learner.epsilon = r.epsilon;
      const target = this.plan.manifest.privacy!.dp!.epsilon;
      log.info({ scenario: this.id.slice(0, 12), steps: prior.steps, epsilon: prior.epsilon, source: prior.source }, 'DP-SGD resumed: the accountant continues from the steps before the restart');
      await this.host.audit.append({ kind: 'privacy', to: 'local', scenario: this.id,
        what: `DP-SGD resumed after a restart: ${prior.steps} steps before it counted (from the ${prior.source}), epsilon ${prior.epsilon} of ${target} spent`,
        detail: JSON.stringify({ state: 'resumed', steps: prior.steps, epsilon: prior.epsilon, target, source: prior.source, maxSteps: plan.maxSteps }) });
    }
    // the steps one training call may take: the plan's steps over the rounds that train (privacy.dp.trainRounds, when set)
    const trainRounds = (this.plan.manifest.privacy!.dp as { trainRounds?: number }).trainRounds;
    const perRound = Math.ceil(plan.maxSteps / Math.min(this.plan.manifest.rounds.max, trainRounds ?? Infinity));
    let capped = false;
    learner.onDpCapped = () => {
      if (capped) return;
      capped = true;
      log.warn({ scenario: this.id.slice(0, 12), epsilon: learner.epsilon }, 'DP-SGD after a restart: the budget\'s steps are used up, this peer stops training early and only averages');
      void this.host.audit.append({ kind: 'privacy', to: 'local', scenario: this.id,
        what: `DP-SGD stopped training early after a restart: the steps counted before and since it use up the budget (epsilon ${learner.epsilon ?? 0} of ${this.plan.manifest.privacy!.dp!.epsilon}); this peer only averages from now on`,
        detail: JSON.stringify({ state: 'stopped-early', epsilon: learner.epsilon ?? 0, steps: totalSteps(learner.dpPhases ?? []) }) }).catch((e: unknown) => log.warn({ err: e }, 'audit append failed'));
    };
    learner.beforeTrain = () => claimSteps(this.host.store, this.id, learner.dpPhases ?? [], plan, perRound, delta);
  }

  private makeTransport(startAt: number): PeerTransport {
    const m = this.plan.manifest;
    const members = { at: (round: number) => this.host.participantsAt(this.id, round), all: () => this.host.participants(this.id) };
    return new PeerTransport(this.host.node, this.host.audit, this.id, members, startAt, m.averaging.topology, m.averaging.roundMs);
  }

  /**
   * privacy.secure and a consortium standardiser: the statistics are secure-summed with the scenario's pairwise keys, so the key
   * setup starts here, before the statistics exchange, on this run's transport; start() reuses the session (register and setup
   * are idempotent, the node wraps the transport again).
   */
  private async secureKeysEarly(layoutHash: string, startAt: number): Promise<PairKeys> {
    const resumed = await loadRound(this.host.store, this.id);
    this.transport ??= this.makeTransport(startAt);
    if (!this.secure) {
      const s = this.secureSession(layoutHash, Boolean(resumed));
      s.wrap(this.transport);
      s.register(this.host.node.peerId.toString());
    }
    return this.secure!.pairKeys();
  }

  /**
   * Secure averaging on real peers (docs/privacy.md): the key setup among the round-0 participants over this run's transport.
   * A peer back from a restart rejoins with a fresh key from a round r0 ahead (src/averaging/secure/rejoin.ts): its old key is
   * gone and its neighbours may have rebuilt it.
   */
  private secureSession(layoutHash: string, resumed: boolean): NetSecureSession | RejoinSession {
    const seed = this.identitySeed;
    if (!seed) throw new CohortError('SECURE_SETUP', 'secure averaging needs this peer\'s Ed25519 identity key to sign its key announcement', 'internal: the daemon passes its identity to the run');
    const m = this.plan.manifest;
    const graph = this.transport!.staticGraph();
    if (!graph.has(this.host.node.peerId.toString())) {
      throw new CohortError('SECURE_LATE', 'this peer was admitted after round 0 of a secure scenario: the masking keys were agreed among the round-0 participants only', 'the scenario goes on without this peer');
    }
    this.secure = resumed
      ? new RejoinSession(this.rejoinOptions(layoutHash, seed, graph, 'after a restart'))
      : new NetSecureSession({ scenario: this.id, layoutHash, identitySeed: seed, graph, deadlineMs: Math.round(m.averaging.roundMs * 0.5),
        onRefused: (from, reason) => this.host.refused(this.id, from, reason) });
    return this.secure;
  }
  private secure: NetSecureSession | RejoinSession | undefined;

  /** This peer's libp2p Ed25519 private key, raw (signs its masking-key announcements), or undefined when the daemon gave none. */
  private get identitySeed(): Uint8Array | undefined {
    return (this.host.identity?.privateKey as { raw?: Uint8Array } | undefined)?.raw;
  }

  /** A fresh-key rejoin's options (after a restart, or after this peer's key was burnt): the same graph, callbacks and audit. */
  private rejoinOptions(layoutHash: string, seed: Uint8Array, graph: ReadonlyMap<string, readonly string[]>, cause: string): RejoinOptions {
    return { scenario: this.id, layoutHash, identitySeed: seed, graph, roundMs: this.plan.manifest.averaging.roundMs, rounds: this.rounds(),
      onRefused: (from, reason) => this.host.refused(this.id, from, reason),
      onDecided: (from, why) => void this.rejoinDecided(from, why, cause),
      onRetry: (from, why) => log.info({ scenario: this.id.slice(0, 12), r0: from, why }, 'secure rejoin: the attempt did not commit before its r0 (nobody uses that key); a new one from round r0') };
  }

  /** Every secure peer answers joiners' announcements and swaps their fresh keys in before their r0; a joiner routes the replies to its session. */
  private rekeyResponder(secure: NetSecureSession | RejoinSession, layoutHash: string): RekeyResponder {
    const self = this.host.node.peerId.toString();
    const seed = this.identitySeed ?? new Uint8Array(32);
    const r = new RekeyResponder({ scenario: this.id, layoutHash, roundMs: this.plan.manifest.averaging.roundMs, session: secure,
      mine: () => (secure instanceof RejoinSession ? secure.mine : roundZeroKey(secure, self, this.id, seed)),
      onRefused: (from, reason) => this.host.refused(this.id, from, reason) });
    if (secure instanceof RejoinSession) r.joiner = secure;
    return r;
  }

  /**
   * A burn notice (src/averaging/secure/node.ts): `holder` released its share of this peer's key to `receiver` in `round`, so that
   * receiver may know the key. The node already masks nothing with it; this peer rejoins the masking with a fresh key, without a
   * restart (src/averaging/secure/burn.ts, the rejoin path of rejoin.ts). Logged and audited.
   */
  private keyBurnt(round: number, holder: string, receiver: string, rekey: RekeyResponder, wire: AveragingTransport, layoutHash: string): void {
    const node = this.averaging as SecureDpsgdNode;
    const old = this.secure;
    const seed = this.identitySeed;
    log.warn({ scenario: this.id.slice(0, 12), round, holder, receiver }, 'secure averaging: a share holder released a share of this peer\'s masking key to a receiver that missed its model (this peer was late there); the key is burnt: no masked model with it any more, rejoining with a fresh key');
    void this.host.audit.append({ kind: 'privacy', to: 'local', scenario: this.id, what: `secure masking key burnt in round ${round}: ${holder} released its share to ${receiver}; rejoining with a fresh key`,
      detail: JSON.stringify({ state: 'key-burnt', round, holder, receiver }) }).catch((e: unknown) => log.warn({ err: e }, 'audit append failed'));
    if (!old || !seed || this.stopped) return;   // receiver-only for the rest of the run (the node masks nothing with the burnt key)
    const next = rejoinAfterBurn(node, rekey, old, wire, this.rejoinOptions(layoutHash, seed, this.transport!.staticGraph(), 'after its key was burnt'));
    this.retiredSecure.push(old);
    this.secure = next;
  }
  /** Sessions replaced by a rejoin after a burn (their refusal counters still count). */
  private readonly retiredSecure: (NetSecureSession | RejoinSession)[] = [];

  /** The joiner's decision just before r0: mask from r0 with the fresh key, or stay a receiver for the rest of the run (audited). */
  private async rejoinDecided(from: number, why: string, cause: string): Promise<void> {
    const node = this.averaging as SecureDpsgdNode | undefined;
    if (node) node.sendsFrom = from;
    const ok = Number.isFinite(from);
    if (ok) log.info({ scenario: this.id.slice(0, 12), r0: from }, 'secure rejoin: masking with a fresh key from round r0');
    else log.warn({ scenario: this.id.slice(0, 12), why }, 'secure rejoin did not complete: this peer only receives for the rest of the run');
    await this.host.audit.append({ kind: 'privacy', to: 'local', scenario: this.id, what: `secure rejoin ${cause}: ${ok ? `fresh masking key from round ${from}` : `not masking again (${why})`}`,
      detail: JSON.stringify({ state: ok ? 'rejoined' : 'receive-only', r0: ok ? from : null, why }) }).catch((e: unknown) => log.warn({ err: e }, 'audit append failed'));
  }

  private secureProgress(): { secure: SecureProgress } | undefined {
    const s = this.secureStats;
    return s && { secure: { maskedSent: s.maskedSent, recovered: s.recovered, roundsWithRecovery: s.roundsWithRecovery, roundsNotMixed: s.roundsNotMixed,
      sharesReleased: s.sharesReleased, sharesRefused: s.sharesRefused, maskedRefused: s.maskedRefused, refusedSetup: s.refusedAnnouncements + s.refusedSetupShares,
      keyBurnt: s.keyBurnt, burnNotices: s.burnNotices, burnNoticesSent: s.burnNoticesSent, burnRefused: s.burnRefused } };
  }

  /** Secure averaging's counters (masked models sent, dropped senders recovered, refused shares...), for status and progress. */
  get secureStats(): (SecureStats & { refusedAnnouncements: number; refusedSetupShares: number }) | undefined {
    const node = this.averaging as SecureDpsgdNode | undefined;
    if (!this.secure || !node?.secure) return undefined;
    const all = [...this.retiredSecure, this.secure];
    return { ...node.secure, refusedAnnouncements: all.reduce((a, x) => a + x.refusedAnnouncements, 0), refusedSetupShares: all.reduce((a, x) => a + x.refusedShares, 0) };
  }

  /**
   * Test-only adversarial mode (src/sim/attacks/test-hook.ts): with COHORT_TEST_ATTACK set by the test runner on a daemon running from
   * the sources, every exchange model this peer sends is rewritten by the attack right before it leaves. Never from a manifest;
   * the compiled build ignores the variable.
   */
  private testAdversary(t: AveragingTransport, length: number): AveragingTransport {
    const d = testAttackFromEnv(process.env, import.meta.url.endsWith('.ts'));
    if (d.attack === null) {
      if ('ignored' in d && d.ignored) log.error(d.ignored);
      return t;
    }
    log.warn({ scenario: this.id.slice(0, 12), attack: d.attack }, 'TEST-ONLY adversarial mode: this peer sends attacked models');
    const m = this.plan.manifest;
    return attackTransport(t, d.attack, { length, seed: m.training.seed, codecOptions: { blockSize: m.compression.blockSize, topkFraction: m.compression.topkFraction } });
  }

  deliver(from: string, msg: AveragingMessage | StatsMessage): void {
    if (msg.kind === 'stats') return this.exchange.receive(from, msg);
    this.transport?.deliver(from, msg);
  }

  /** The standardiser this peer's inputs are scaled with (consortium or site); undefined with standardize off. */
  standardiser: AgreedStandardiser | undefined;
  private exchangeInstance: StatsExchange | undefined;
  /** Made on first use: statistics can arrive from a participant before this peer's worker is ready. Before the run plan is
   * published, its members are the round-0 participants the launcher fixed (agreeBeforeStart). */
  private get exchange(): StatsExchange {
    const orFormed = (ids: readonly string[]): readonly string[] => (ids.length ? ids : this.formed ?? []);
    return this.exchangeInstance ??= new StatsExchange({ node: this.host.node, audit: this.host.audit, scenario: this.id,
      contributors: () => orFormed(this.host.participantsAt(this.id, 0)), participants: () => orFormed(this.host.participants(this.id)) });
  }

  /** The worker's input scale mode, once it is ready ("consortium": a standardiser is agreed before the start). */
  private scaleMode: string | undefined;
  /** The round-0 participants the launcher fixed before publishing the start (its heartbeat's `forming`). */
  private formed: readonly string[] | undefined;

  /**
   * Start protocol (docs/daemon.md): the launcher fixed the round-0 participants and waits at its readiness barrier; the consortium
   * standardiser is agreed among them now, before the start time exists. Resolves once agreed (or at once when none is needed
   * here). privacy.secure agrees after the start instead: its statistics are masked with the run's pairwise keys.
   */
  async agreeBeforeStart(participants: readonly string[]): Promise<void> {
    if (this.formed || this.begun) return;
    this.formed = [...participants];
    const ready = await this.prepare();
    if (this.stopped || this.begun || !this.needsAgreementFirst) return;
    const exchange = this.exchange;
    await new Promise<void>((resolve) => {
      exchange.onAgreed = () => resolve();
      exchange.begin(ready.inputScale.stats ?? null, { layoutHash: ready.layoutHash, meta: ready.inputScale.meta });
      if (exchange.current) resolve();
    });
  }

  private get needsAgreementFirst(): boolean {
    return this.scaleMode === 'consortium' && !this.plan.manifest.privacy?.secure;
  }

  /** The worker is ready but the consortium standardiser is not agreed yet: not ready for the start (the launcher's barrier waits). */
  get standardising(): boolean {
    return this.workerReady && !this.begun && this.needsAgreementFirst && !this.exchangeInstance?.current;
  }

  /** The hash of the standardiser agreed so far (before or after the start), for the heartbeat. */
  get agreedHash(): string | undefined {
    return this.exchangeInstance?.current?.hash;
  }

  /**
   * Inputs on the manifest's scale before round 0 (issue 13.1): "consortium": the standardiser kept from an earlier start of this
   * run, or one agreed now with the other participants (src/peer/stats-exchange.ts); "site": the worker's own. Kept in the store.
   */
  private async scaleInputs(ready: Ready, startAt: number): Promise<void> {
    const scale = ready.inputScale;
    if (scale.mode === 'none') return;
    if (scale.mode === 'site') {
      this.standardiser = scale.standardiser;
      if (scale.standardiser) await saveStandardiser(this.host.store, this.id, scale.standardiser);
      return;
    }
    // agreed before the start among the round-0 participants the launcher fixed; a different round-0 set (the launcher restarted
    // during its barrier and chose again) agrees anew
    const r0 = [...this.host.participantsAt(this.id, 0)].sort().join();
    if (this.formed && [...this.formed].sort().join() !== r0) {
      this.exchangeInstance?.close();
      this.exchangeInstance = undefined;
      this.formed = undefined;
    }
    const pre = this.exchangeInstance?.current;
    const kept = pre ? undefined : await readStandardiser(this.host.store, this.id).catch(() => undefined);
    const m = this.plan.manifest;
    const secure = m.privacy?.secure ? { secure: () => this.secureKeysEarly(ready.layoutHash, startAt) } : {};
    const agreed = pre ?? kept ?? await this.exchange.agree(scale.stats ?? null, { layoutHash: ready.layoutHash, startAt, deadlineMs: Math.max(5000, m.averaging.roundMs), meta: scale.meta, ...secure });
    // back after a restart: late participants still get the standardiser from this peer
    if (kept) this.exchange.serve(kept, ready.layoutHash);
    else await saveStandardiser(this.host.store, this.id, agreed);
    await this.applyStandardiser(agreed);
  }

  private async applyStandardiser(s: AgreedStandardiser): Promise<void> {
    const r = await this.client!.call({ op: 'standardise', standardiser: s });
    if (r.op !== 'standardised') throw new CohortError('WORKER_ERROR', `unexpected worker reply ${r.op}`);
    this.standardiser = s;
  }

  /** A live, ready worker's budget and baseline for the native-memory watchdog (src/peer/watchdog.ts); undefined otherwise. */
  get watched(): { id: string; budgetBytes: number; baselineRss: number } | undefined {
    const m = this.memory;
    return m?.baselineRss !== undefined && !this.stopped && !this.exited ? { id: this.id, budgetBytes: m.budgetBytes, baselineRss: m.baselineRss } : undefined;
  }

  /** The worker's memory budget (bytes), once the worker was created. */
  get memoryBudgetBytes(): number | undefined {
    return this.memory?.budgetBytes;
  }

  /** The averaging node's counters (rounds, late and rejected models) and the worker's last reported memory, for /metrics. */
  get metrics(): { stats?: NodeStats; workerMemoryBytes?: number } {
    return { stats: this.averaging?.stats, workerMemoryBytes: this.learner?.memoryBytes };
  }

  get bytesSent(): number {
    return this.transport?.bytesSent ?? 0;
  }

  /** At the end of round r (just before round r+1 starts): evaluate, checkpoint, report. */
  private scheduleRoundEnd(): void {
    if (this.stopped || !this.transport) return;
    const m = this.plan.manifest;
    const now = this.transport.now();
    const margin = Math.min(100, m.averaging.roundMs * 0.05);
    let round = Math.max(0, Math.floor(now / m.averaging.roundMs));
    let at = (round + 1) * m.averaging.roundMs - margin;
    if (at <= now) {
      round++;
      at += m.averaging.roundMs;
    }
    if (round >= this.rounds()) return void this.finish().catch((e: unknown) => log.error({ err: e }, 'finishing failed'));
    this.roundTimer = setTimeout(() => {
      void this.endRound(round).catch((e: unknown) => {
        // the disk is below the store's free-space floor (src/store/space.ts): this peer's part fails with DISK_FULL, seen by the others
        if (e instanceof CohortError && e.code === 'DISK_FULL') return void this.host.failed(this.id, e);
        log.warn({ err: e }, 'round bookkeeping failed');
      }).finally(() => this.scheduleRoundEnd());
    }, at - now);
  }

  /** The manifest's maximum, or fewer when the stopping rule fired. */
  private rounds(): number {
    return roundsToRun(this.plan.manifest.rounds.max, this.host.stopAt(this.id));
  }

  private async endRound(round: number): Promise<void> {
    if (!this.client || !this.averaging || this.stopped) return;
    const model = this.averaging.estimate().slice();
    const metrics = await this.evaluate(model);
    const ck = await this.client.call({ op: 'checkpoint', params: model.slice() });
    if (ck.op !== 'bytes' || this.stopped) return;
    const dp = this.plan.manifest.privacy?.dp;
    await saveRound(this.host.store, this.id, { round, loss: this.learner?.lastLoss, metric: metrics[this.plan.manifest.task.metric], roundsTrained: this.roundsTrained,
      ...(dp && this.learner?.dpPhases ? { dp: accountingOf(this.learner.dpPhases, dp.delta) } : {}) }, ck.bytes);
    if (!this.attemptsReset) {
      this.attemptsReset = true;
      await this.host.store.scenarios.put(`attempts/${this.id}`, 0);
    }
    this.status = { ...this.status, round, loss: this.learner?.lastLoss, metric: metrics[this.plan.manifest.task.metric] };
    await this.host.publishProgress(this.id, { ...this.progress(round, metrics), ...(await this.suspicion(round)) });
  }

  /** Robust aggregation: a signed report naming the neighbours this peer's scores flag (new ones are audited once). */
  private async suspicion(round: number): Promise<{ suspicion?: SignedSuspicion }> {
    const robust = this.averaging?.robust;
    if (!robust || !this.host.identity) return {};
    const report = suspicionReport(this.id, round, robust.aggregator, robust.scores, this.host.node.peerId.toString());
    if (!report) return {};
    const signed = await signSuspicion(report, this.host.identity);
    const names = report.suspects.map((s) => s.peer).join(',');
    if (names !== this.reported) {
      this.reported = names;
      await this.host.audit.append(suspicionAudit(signed, { sent: 'gossip:scenario-view' }));
    }
    return { suspicion: signed };
  }
  private reported = '';

  private progress(round: number, metrics: Metrics, extra: Partial<SiteProgress> = {}): SiteProgress {
    const loss = this.learner?.lastLoss;
    const metric = metrics[this.plan.manifest.task.metric];
    return { round, seq: ++this.seq, roundsTrained: this.roundsTrained, ...(Number.isFinite(loss) ? { loss } : {}), ...(metric !== undefined && Number.isFinite(metric) ? { metric } : {}),
      metricName: this.plan.manifest.task.metric, bytesSent: this.bytesSent, ...(this.heldOut !== undefined ? { heldOut: this.heldOut } : {}),
      ...(this.standardiser ? { standardiser: this.standardiser.hash } : {}),
      ...(this.learner?.epsilon !== undefined ? { epsilon: Math.round(this.learner.epsilon * 1e6) / 1e6 } : {}),
      ...(this.secureProgress() ?? {}), ...extra };
  }

  private async evaluate(model: Float32Array): Promise<Metrics> {
    const r = await this.client!.call({ op: 'evaluate', params: model.slice() });
    return r.op === 'metrics' ? r.metrics : { loss: Number.NaN };
  }

  /** The final model's metrics and, for the report, their 95% intervals (computed in the worker: only aggregates come back). */
  private async evaluateFinal(model: Float32Array): Promise<{ metrics: Metrics; scores?: Evaluation['scores'] }> {
    const r = await this.client!.call({ op: 'evaluate', params: model.slice(), intervals: true });
    return r.op === 'metrics' ? { metrics: r.metrics, ...(r.evaluation ? { scores: r.evaluation.scores } : {}) } : { metrics: { loss: Number.NaN } };
  }

  /** DP-SGD: the epsilon this peer's run has spent (the worker's accountant); undefined without privacy.dp. */
  get epsilonSpent(): number | undefined {
    return this.learner?.epsilon;
  }

  /** Rounds in which this peer's local training really ran (before and after a restart). */
  get roundsTrained(): number {
    return this.trainedBefore + (this.learner?.trained ?? 0);
  }

  private async finish(): Promise<void> {
    if (!this.client || !this.averaging || this.stopped) return;
    const m = this.plan.manifest;
    const rounds = this.rounds();
    // a peer that never trained has no model of its own to report: never "done" with an untrained model
    if (this.roundsTrained === 0) {
      this.host.failed(this.id, new CohortError('NOT_TRAINED', `this peer trained in none of the ${rounds} rounds (its worker was not ready in time, or it came back after them)`, 'raise launch.startDelayMs, or check the daemon log for a slow worker'));
      return;
    }
    const model = this.averaging.estimate().slice();
    const { metrics, scores } = await this.evaluateFinal(model.slice());
    let localOnly: number | undefined;
    let localOnlyScores: Evaluation['scores'] | undefined;
    if (m.evaluation.compareLocalOnly) {
      const r = await this.client.call({ op: 'localOnly', rounds, intervals: true });
      if (r.op === 'metrics') { localOnly = r.metrics[m.task.metric]; localOnlyScores = r.evaluation?.scores; }
    }
    await this.keepFinal(model, metrics, localOnly, rounds - 1, scores ? { scores } : {});
    this.status = { ...this.status, round: rounds - 1, metric: metrics[m.task.metric], done: true };
    await this.host.publishProgress(this.id, this.progress(rounds - 1, metrics, { done: true, ...(localOnly !== undefined ? { localOnly } : {}),
      ...(scores ? { scores } : {}), ...(localOnlyScores ? { localOnlyScores } : {}),
      // the last suspicion report rides on the final progress too: it replaces the round's, and the views would lose the report
      ...(await this.suspicion(rounds - 1)) }));
    log.info({ scenario: this.id.slice(0, 12), metric: metrics[m.task.metric], localOnly }, 'scenario finished on this peer');
    await this.stop();
  }

  /** The final model as ONNX (for export) and as the raw parameter vector (for participants that come back after the end). */
  private async keepFinal(model: Float32Array, metrics: Metrics, localOnly: number | undefined, round: number, extra: Record<string, unknown> = {}): Promise<void> {
    const m = this.plan.manifest;
    const value = metrics[m.task.metric];
    // what the exported model's metadata says about where it came from (src/engine/export.ts)
    const provenance = { scenario: { id: this.id, hash: this.id, name: m.name }, participants: [...this.host.participants(this.id)], rounds: round + 1,
      metric: { name: m.task.metric, ...(value !== undefined && Number.isFinite(value) ? { value } : {}) } };
    const onnx = await this.client!.call({ op: 'export', params: model.slice(), provenance });
    if (onnx.op !== 'bytes') return;
    const ready = await this.prepare();
    await this.host.store.checkpoints.put(`final/${this.id}/model.onnx`, onnx.bytes);
    await this.host.store.checkpoints.put(`final/${this.id}/params`, new Uint8Array(model.buffer.slice(model.byteOffset, model.byteOffset + model.byteLength)));
    await this.host.store.scenarios.put(`final/${this.id}`, { metrics, localOnly, round, layoutHash: ready.layoutHash, at: new Date().toISOString(),
      ...(this.standardiser ? { standardiser: { mode: this.standardiser.mode, hash: this.standardiser.hash } } : {}), ...extra });
  }

  /**
   * Back after the scenario finished without this peer: take the final model from a participant that has it (`fetch`), check
   * it, evaluate it here, keep it for export, and report `done` with the last round this peer really trained in.
   */
  async catchUp(fetch: (layoutHash: string, length: number) => Promise<Float32Array | undefined>, finalRound: number): Promise<boolean> {
    const ready = await this.prepare();
    if (this.stopped || !this.client) return false;
    if (ready.inputScale.mode === 'consortium') {
      const s = await readStandardiser(this.host.store, this.id).catch(() => undefined);
      // not done: fetching the standardiser from a participant after the end (only the one kept from this peer's own start)
      if (!s) {
        log.warn({ scenario: this.id.slice(0, 12) }, 'back after the end without the consortium standardiser: the final model cannot be evaluated on its input scale here');
        return false;
      }
      await this.applyStandardiser(s);
    } else this.standardiser = ready.inputScale.standardiser;
    const resumed = await loadRound(this.host.store, this.id).catch(() => undefined);
    const lastTrainedRound = resumed?.state.round ?? -1;
    const model = await fetch(ready.layoutHash, ready.params.length);
    if (!model || this.stopped) return false;
    this.heldOut = ready.testCount;
    const { metrics, scores } = await this.evaluateFinal(model.slice());
    await this.keepFinal(model, metrics, undefined, finalRound, { lastTrainedRound, adoptedAfterEnd: true, ...(scores ? { scores } : {}) });
    this.status = { round: finalRound, provider: ready.provider, metric: metrics[this.plan.manifest.task.metric], done: true };
    await this.host.publishProgress(this.id, this.progress(finalRound, metrics, { done: true, lastTrainedRound, ...(scores ? { scores } : {}) }));
    log.info({ scenario: this.id.slice(0, 12), lastTrainedRound, finalRound }, 'back after the end: took the final model from a participant');
    await this.stop();
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.roundTimer);
    this.averaging?.leave();
    this.transport?.close();
    this.secure?.close();
    for (const x of this.retiredSecure) x.close();
    this.exchangeInstance?.close();
    const client = this.client;
    if (!client || this.exited) return;
    // terminating a worker while onnxruntime runs in it aborts the whole process (Napi::Error): the worker stops training after
    // the current step, leaves by itself once its request in flight is answered, and is terminated only if it never does
    Atomics.store(new Int32Array(this.cancel), 0, 1);
    const gone = this.gone ?? Promise.resolve();
    client.worker.postMessage({ rid: -1, op: 'exit' } satisfies WorkerRequest);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 120_000).unref());
    if ((await Promise.race([gone, timer])) === 'timeout') {
      log.error({ scenario: this.id.slice(0, 12) }, 'training worker did not leave within 120 s: terminating it');
      await client.worker.terminate();
    }
  }
}

function hashSeed(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}
