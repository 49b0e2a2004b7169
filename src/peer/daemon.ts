/**
 * The peer daemon: the composition root wiring net + store + scenario + engine (in workers) + averaging, and the admin API.
 *
 *   const d = await Daemon.start(configFile);   // foreground; logs via pino; `cohort peer start --config FILE`
 *   await d.stop();                             // graceful: workers, admin API, libp2p, store (the CLI calls it on SIGINT/SIGTERM)
 *
 * Start order: config -> identity (created at first start) -> store (must exist after the first start: never a silent reset)
 * -> audit -> libp2p node (roster-gated) -> scenario book + coordinator -> resume running scenarios -> heartbeats -> admin API.
 */
import { existsSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { decodeWire } from '../averaging/message.ts';
import { makeHeader, type ModelHeader } from '../net/model-exchange.ts';
import { createIdentity, loadIdentity, type Identity } from '../net/identity.ts';
import { startNodeFromConfig, type CohortNode } from '../net/node.ts';
import { delta, TERMINAL, type SiteProgress } from '../scenario/lifecycle.ts';
import { isParticipant, participantsAt, participantsOf, roundsToRun } from '../scenario/participants.ts';
import { CohortError } from '../util/errors.ts';
import { redact } from '../util/redact.ts';
import { Refusals } from './refusals.ts';
import { AuditLog } from '../store/audit.ts';
import { openStore, storeError, type Store } from '../store/db.ts';
import { headAnchor, recordWitness } from '../store/head.ts';
import { logger } from '../util/log.ts';
import { startAdminApi, type AdminApi } from './admin.ts';
import { ScenarioBook } from './book.ts';
import { loadDaemonConfig, type DaemonConfig } from './config.ts';
import { Coordinator, readinessBeat } from './coordinator.ts';
import { LocalData } from './datasets.ts';
import { DatasetRegistry } from '../store/datasets.ts';
import { runPlanOf } from './plan.ts';
import { adminRoutes } from './routes.ts';
import { ScenarioRun } from './runner.ts';
import type { GraphReport } from '../engine/trainer.ts';
import { DaemonMetrics } from './metrics.ts';
import { MemoryWatchdog, type WatchedWorker } from './watchdog.ts';
import { liveLinks } from './topology.ts';
import { PeerLedger } from '../privacy/peer-ledger.ts';

const log = logger('peer:daemon');
const REPUBLISH_EVERY = 3;

export class Daemon {
  readonly runs = new Map<string, ScenarioRun>();
  /** The latest graph reports of this peer's training worker per scenario (kept after the run ends: `cohort status`). */
  private readonly graphs = new Map<string, GraphReport[]>();
  private heartbeat: NodeJS.Timeout | undefined;
  private beats = 0;
  private admin: AdminApi | undefined;
  private stopping: Promise<void> | undefined;
  readonly startedAt = new Date();
  /** Prometheus metrics for GET /metrics (src/peer/metrics.ts). */
  readonly metrics: DaemonMetrics;
  /** Stops a training worker whose native (onnxruntime) memory outgrows its budget (src/peer/watchdog.ts). */
  private readonly watchdog: MemoryWatchdog;

  private constructor(
    readonly cfg: DaemonConfig,
    readonly identity: Identity,
    readonly store: Store,
    readonly audit: AuditLog,
    readonly node: CohortNode,
    readonly book: ScenarioBook,
    readonly coordinator: Coordinator,
    readonly data: LocalData,
    readonly refusals: Refusals,
  ) {
    this.metrics = new DaemonMetrics({
      net: () => node.metrics(), refusals: () => refusals.list(), name: (p) => node.roster.current.member(p)?.name ?? '',
      runs: () => [...this.runs].map(([id, r]) => ({ id, ...r.metrics, nativeMemoryBytes: this.watchdog.usedBytes(id), memoryBudgetBytes: r.memoryBudgetBytes })),
    });
    this.watchdog = new MemoryWatchdog(() => [...this.runs.values()].map((r) => r.watched).filter((w): w is WatchedWorker => w !== undefined),
      (id, used, budget) => this.runFailed(id, new CohortError('WORKER_NATIVE_MEMORY',
        `the training worker's native memory (onnxruntime: arena, tensors) grew by ${(used / 1024 ** 2).toFixed(0)} MiB, above its budget of ${(budget / 1024 ** 2).toFixed(0)} MiB; it was stopped and the daemon goes on`,
        'lower the model or batch size, or raise admission.workerHeapMiB in cohort.json')));
  }

  static async start(configFile: string): Promise<Daemon> {
    const cfg = loadDaemonConfig(configFile);
    const identity = await ensureIdentity(cfg.net.keyFile);
    const store = await openPeerStore(cfg.dir, cfg.store.minFreeBytes);
    let node: CohortNode | undefined;
    try {
      const audit = await AuditLog.open(store, { anchor: headAnchor(cfg.dir, identity.privateKey, identity.peerId.toString()), maxPerSecond: cfg.store.auditMaxPerSecond });
      if (audit.recovery.lostTail || audit.recovery.replaced !== undefined) log.error({ lost: audit.recovery.lostTail, replaced: audit.recovery.replaced }, 'the store lost or replaced audit entries behind the signed head (recorded as a gap entry; `cohort audit --verify`); restore the store from backup if you have a newer one');
      if (audit.recovery.anchor === 'bad-signature') log.error({ file: headAnchor(cfg.dir).file }, 'the audit head file is not signed by this peer: it was replaced or edited; it is rewritten now');
      node = await startNodeFromConfig(configFile);
      const book = await ScenarioBook.load(store);
      const data = new LocalData(cfg, new DatasetRegistry(store.datasets));
      const refusals = new Refusals();
      const ledger = new PeerLedger(store.meta, cfg.approval.privacy.lifetimeEpsilon, audit);
      const coordinator = new Coordinator(cfg, identity, node, book, audit, data, refusals, ledger);
      const d = new Daemon(cfg, identity, store, audit, node, book, coordinator, data, refusals);
      await d.wire();
      return d;
    } catch (e) {
      await node?.stop().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw storeError(store.location, e);
    }
  }

  get self(): string {
    return this.identity.peerId.toString();
  }

  private async wire(): Promise<void> {
    await this.audit.append({ kind: 'start', to: 'local', what: `daemon started (${this.cfg.name})` });
    this.node.models.onModel({
      check: (h, from) => this.admitModel(h.scenarioId, from.toString()),
      receive: (h, bytes, from) => {
        const run = this.runs.get(h.scenarioId);
        const verdict = this.admitModel(h.scenarioId, from.toString(), false);
        if (!run || !verdict.ok) return verdict;
        const msg = decodeWire(bytes);
        run.deliver(from.toString(), msg);
        const name = this.node.roster.current.member(from)?.name ?? from.toString();
        const what = msg.kind === 'stats' ? `preprocessing ${msg.body === 'agreed' ? 'standardiser' : 'statistics'} from ${name}` : `round ${h.round} model from ${name}`;
        void this.audit.transfer({ kind: 'model-received', scenario: h.scenarioId, round: h.round, peer: from.toString(), what, bytes: h.byteLength, sha256: h.sha256 }).catch(() => undefined);
        return { ok: true };
      },
    });
    this.node.models.onPull((req, from) => this.servePull(req.scenarioId, from.toString()));
    // refused connections (not on the roster, removed, wrong PSK): counted, shown in `cohort status`, audited in aggregate
    this.node.onConnectionRefused((r) => this.refusals.record({ peer: r.peer, channel: 'connection', reason: r.reason }));
    this.node.roster.onChange((next) => {
      if (next.has(this.self)) return;
      log.error({ peer: this.self, rosterVersion: next.version }, 'this peer was removed from the consortium roster: stopping its scenarios; it can no longer reach the other members');
      for (const [id, run] of [...this.runs]) {
        this.runs.delete(id);
        void run.stop();
      }
    });
    this.coordinator.onRunnable = (id) => void this.maybeRun(id).catch((e: unknown) => this.runFailed(id, e));
    this.coordinator.onApproved = (id) => this.prepare(id);
    this.coordinator.locallyReady = (id) => this.runs.get(id)?.workerReady === true && !this.runs.get(id)?.standardising;
    this.coordinator.beatNow = () => void this.coordinator.publishHeartbeat(this.heartbeatBody()).catch(() => undefined);
    // the launcher fixed the round-0 participants: agree the standardiser, then say so at once (its readiness barrier waits)
    this.coordinator.onForming = (id, participants) => void this.runs.get(id)?.agreeBeforeStart(participants)
      .then(() => this.coordinator.publishHeartbeat(this.heartbeatBody())).catch((e: unknown) => log.warn({ scenario: id.slice(0, 12), err: e }, 'standardiser before the start failed'));
    this.book.onChange((id) => this.settle(id));
    this.coordinator.start();
    for (const { signed } of this.book.list()) void this.maybeRun(signed.id).catch((e: unknown) => this.runFailed(signed.id, e));
    this.connectMembers();
    this.heartbeat = setInterval(() => void this.beat(), this.cfg.heartbeatMs);
    this.watchdog.start();
    this.admin = await startAdminApi(this.cfg.dir, adminRoutes(this), { port: this.cfg.admin.port });
    log.info({ name: this.cfg.name, peer: this.self, addrs: this.node.multiaddrs() }, 'peer daemon ready');
  }

  /**
   * The participant rule on the model path: only a participant of the scenario's verified run plan may push models, pull, reply
   * or acknowledge. Anyone else is refused before a byte of the body is read, counted and audited (never acknowledged).
   */
  private admitModel(scenario: string, from: string, count = true): { ok: true } | { ok: false; reason: 'not-participant' | 'unknown-scenario'; detail?: string } {
    const view = this.book.get(scenario)?.view;
    if (view?.run && !isParticipant(view, from)) {
      if (count) this.refusals.record({ scenario, peer: from, channel: 'model', reason: 'not-participant' });
      return { ok: false, reason: 'not-participant', detail: 'only the peers that approved this scenario take part in its model exchange' };
    }
    const run = this.runs.get(scenario);
    if (run?.begun) return { ok: true };
    // before the run plan exists: the standardiser is agreed among the approvers the launcher fixed (start protocol, docs/daemon.md)
    if (run && view && !view.run && view.approvals[from]?.sig) return { ok: true };
    return { ok: false, reason: 'unknown-scenario' };
  }

  /** Start this peer's part of a running scenario it takes part in, within the compute budget. */
  private async maybeRun(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry || this.stopping) return;
    const { view } = entry;
    if (!view.run || !isParticipant(view, this.self) || view.progress[this.self]?.done || view.progress[this.self]?.failed) return;
    if (!this.node.roster.current.has(this.self)) return;   // removed from the roster: runs nothing
    if (view.state === 'finished') return this.catchUp(id);
    if (view.state !== 'running') return;
    // back when not even one round is left: training on would only report a stale model as done; wait to hear the end, then
    // catch up (take the final model from a participant that finished)
    const { manifest } = runPlanOf(entry.signed.manifest);
    const rounds = roundsToRun(manifest.rounds.max, view.stopAt);
    if (!this.runs.get(id)?.begun && Date.now() > view.run.startAt + (rounds - 1) * manifest.averaging.roundMs) {
      log.info({ scenario: id.slice(0, 12) }, 'back after the last round: waiting to hear the end, then taking the final model from a participant');
      return;
    }
    const run = this.runs.get(id) ?? this.newRun(id);
    if (!run || run.begun) return;
    // a compute slot is held by started runs only: prepared workers of scenarios that have not started do not block this one
    const started = [...this.runs.values()].filter((r) => r.begun).length;
    if (started >= this.cfg.compute.maxConcurrentScenarios) {
      log.warn({ scenario: id.slice(0, 12), budget: this.cfg.compute.maxConcurrentScenarios }, 'compute slots full: scenario waits for a slot');
      return;
    }
    await run.start(view.run);
  }

  /** A final model, to a participant that comes back after the end (the participant rule applies to pulls too). */
  private async servePull(scenario: string, from: string): Promise<{ header: ModelHeader; bytes: Uint8Array } | { ok: false; reason: 'not-participant' | 'not-available'; detail?: string }> {
    const entry = this.book.get(scenario);
    if (!entry?.view.run || !isParticipant(entry.view, from)) {
      this.refusals.record({ scenario, peer: from, channel: 'model', reason: 'not-participant' });
      return { ok: false, reason: 'not-participant', detail: 'only the peers that approved this scenario may pull its model' };
    }
    const final = await this.store.scenarios.get(`final/${scenario}`) as { layoutHash?: string; round?: number } | undefined;
    const bytes = await this.store.checkpoints.get(`final/${scenario}/params`);
    if (entry.view.state !== 'finished' || !final?.layoutHash || !bytes) return { ok: false, reason: 'not-available', detail: 'this peer holds no final model of the scenario' };
    const header = makeHeader({ scenarioId: scenario, round: Math.max(0, final.round ?? 0), sender: this.self, layoutHash: final.layoutHash, dtype: 'float32' }, bytes);
    const name = this.node.roster.current.member(from)?.name ?? from;
    await this.audit.append({ kind: 'model-sent', to: from, what: `final model (pull by ${name}, back after the end)`, scenario, bytes: bytes.byteLength, sha256: header.sha256 });
    return { header, bytes };
  }

  /** This peer took part but came back after the end: adopt the final model from a participant that finished. */
  private async catchUp(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry?.view.run || this.runs.has(id)) return;
    const holders = participantsOf(entry.view).filter((p) => p !== this.self && entry.view.progress[p]?.done);
    // nobody known to hold the final model yet: the heartbeat retries, without a training worker started for nothing
    if (holders.length === 0) return;
    const run = new ScenarioRun(this.runHost(), id, runPlanOf(entry.signed.manifest));
    // claimed before the first await: the heartbeat and the view changes that ask for a catch-up start no second one (each
    // started a worker: three at once were seen on a loaded machine)
    this.runs.set(id, run);
    const fetch = async (layoutHash: string, length: number): Promise<Float32Array | undefined> => {
      for (const p of holders) {
        try {
          const { header, bytes } = await this.node.models.pull(peerIdFromString(p), { scenarioId: id, layoutHash });
          const v = new Float32Array(bytes.slice().buffer);
          if (header.layoutHash !== layoutHash || v.length !== length || !v.every(Number.isFinite)) throw new Error('wrong layout, length or non-finite values');
          return v;
        } catch (e) {
          log.warn({ scenario: id.slice(0, 12), from: p, err: (e as Error).message }, 'final model pull failed; trying another participant');
        }
      }
      return undefined;
    };
    const finalRound = Math.max(...Object.values(entry.view.progress).filter((p) => p.done).map((p) => p.round));
    try {
      if (await this.store.scenarios.get(`final/${id}`)) return;
      if (!(await run.catchUp(fetch, finalRound))) log.warn({ scenario: id.slice(0, 12) }, 'no participant could give the final model yet; will retry');
    } finally {
      this.runs.delete(id);
      await run.stop();
    }
  }

  /** A run slot for an approved scenario: the worker loads data and builds the model before the start. */
  private newRun(id: string): ScenarioRun | undefined {
    const entry = this.book.get(id);
    if (!entry || this.runs.has(id)) return this.runs.get(id);
    // workers prepared or running: at most the slots plus the admission queue (admission declines beyond that at announce time)
    if (this.runs.size >= this.cfg.compute.maxConcurrentScenarios + this.cfg.admission.maxQueuedScenarios) {
      log.warn({ scenario: id.slice(0, 12), budget: this.cfg.compute.maxConcurrentScenarios }, 'compute budget full: scenario waits for a slot');
      return undefined;
    }
    const run = new ScenarioRun(this.runHost(), id, runPlanOf(entry.signed.manifest));
    this.runs.set(id, run);
    return run;
  }

  private prepare(id: string): void {
    const run = this.newRun(id);
    // ready: say so at once (the launcher's readiness barrier waits for every participant's worker), not at the next heartbeat
    run?.prepare().then(() => this.coordinator.publishHeartbeat(this.heartbeatBody()), (e: unknown) => { if (this.runs.get(id) === run) this.runFailed(id, e); }).catch(() => undefined);
  }

  /** What the heartbeat says: load, device, running scenarios, the scenarios whose worker is ready (readiness barrier), live links to members (dashboard topology), audit head. */
  private heartbeatBody() {
    const running = [...this.runs.keys()];
    return { name: this.cfg.name, load: running.length, device: this.deviceInUse(), scenarios: running, ...readinessBeat(this.runs), links: liveLinks(this.node, this.self),
      ...(this.audit.head ? { auditHead: this.audit.head } : {}) };
  }

  /** A run whose scenario was cancelled or failed stops; a prepared worker whose scenario started without this peer is let go. */
  private settle(id: string): void {
    const run = this.runs.get(id);
    const view = this.book.get(id)?.view;
    if (view && TERMINAL.has(view.state)) void this.releasePrivacy(id);
    if (!run || !view) return;
    const ended = view.state === 'cancelled' || view.state === 'failed';   // a finished run ends itself after its last round
    // not started: a rejection by this peer's operator or an expired announcement frees the prepared worker at once
    const letGo = !run.begun && (view.rejections[this.self] !== undefined || this.coordinator.expired(id));
    if (ended || letGo || (!run.begun && (TERMINAL.has(view.state) || (view.run && !isParticipant(view, this.self))))) {
      if (ended && run.begun) log.info({ scenario: id.slice(0, 12), state: view.state, reason: view.reason }, 'scenario ended: stopping this peer\'s run');
      this.runs.delete(id);
      void run.stop();
    }
  }

  private runHost() {
    return {
      cfg: this.cfg, node: this.node, store: this.store, audit: this.audit, data: this.data,
      identity: this.identity,
      publishProgress: async (id: string, p: SiteProgress) => {
        await this.coordinator.applyAndPublish(delta.progress(id, this.self, p), `progress round ${p.round}`);
        if (p.done) await this.settlePrivacy(id);
        if (p.done) this.release(id);
      },
      failed: (id: string, e: unknown) => this.runFailed(id, e),
      stopAt: (id: string) => this.book.get(id)?.view.stopAt,
      participantsAt: (id: string, round: number) => participantsAt(this.book.get(id)?.view ?? { run: undefined }, round),
      participants: (id: string) => participantsOf(this.book.get(id)?.view ?? { run: undefined }),
      refused: (id: string, peer: string, reason: string) => this.refusals.record({ scenario: id, peer, channel: 'model', reason }),
      roundTrained: (id: string, seconds: number) => this.metrics.roundTrained(id, seconds),
      graphsReported: (id: string, graphs: GraphReport[]) => void this.graphs.set(id, graphs),
    };
  }

  /** This peer's run of a DP scenario ended: the ledger records the epsilon its worker's accountant says was spent. */
  private async settlePrivacy(id: string): Promise<void> {
    const entry = this.book.get(id);
    const spent = this.runs.get(id)?.epsilonSpent;
    if (!entry || spent === undefined || !this.coordinator.ledger) return;
    await this.coordinator.ledger.settle(runPlanOf(entry.signed.manifest).dataset, id, spent)
      .catch((e: unknown) => log.error({ scenario: id.slice(0, 12), err: e }, 'privacy ledger: settling the spent epsilon failed (the reservation stands)'));
  }

  /**
   * A DP scenario that ended with this peer outside its run (no run plan: cancelled or failed before the start; or left out of
   * the plan) spent nothing of its reservation: it is released. A participant keeps its reservation unless its run settled it
   * (a run that failed may have taken steps its progress never reported).
   */
  private async releasePrivacy(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry || !this.coordinator.ledger || (entry.view.run && isParticipant(entry.view, this.self))) return;
    const dataset = (() => { try { return runPlanOf(entry.signed.manifest).dataset; } catch { return undefined; } })();
    if (dataset) await this.coordinator.ledger.release(dataset, id).catch((e: unknown) => log.warn({ scenario: id.slice(0, 12), err: e }, 'privacy ledger: release failed'));
  }

  /** A finished or failed run frees its slot; a waiting scenario may take it. */
  private release(id: string): void {
    this.runs.delete(id);
    for (const { signed, view } of this.book.list()) if (view.state === 'running') void this.maybeRun(signed.id).catch((e: unknown) => this.runFailed(signed.id, e));
  }

  /**
   * This peer's part failed: it says so for itself only (a signed progress entry with a code and a redacted message); the
   * scenario goes on with the others unless too few are left (the end rule in src/scenario/participants.ts).
   */
  private runFailed(id: string, e: unknown): void {
    log.error({ scenario: id.slice(0, 12), err: e }, 'scenario run failed on this peer');
    const run = this.runs.get(id);
    this.runs.delete(id);
    void run?.stop();
    const view = this.book.get(id)?.view;
    const failed = { code: e instanceof CohortError ? e.code : 'INTERNAL', message: redact(e instanceof Error ? e.message : String(e)) };
    const p: SiteProgress = { ...(view?.progress[this.self] ?? { round: 0 }), seq: Date.now(), failed };
    void this.coordinator.applyAndPublish(delta.progress(id, this.self, p), `failure of this peer's run (${failed.code})`).catch(() => undefined);
  }

  /** Dial roster members with known addresses that are not connected (start, and every heartbeat: peers come back). */
  private connectMembers(): void {
    const connected = new Set(this.node.libp2p.getConnections().map((c) => c.remotePeer.toString()));
    for (const m of this.node.roster.current.members) {
      if (m.peerId === this.self || connected.has(m.peerId)) continue;
      for (const addr of m.addrs ?? []) void this.node.dial(addr).catch((e: unknown) => log.debug({ peer: m.name, err: (e as Error).message }, 'dial failed'));
    }
  }

  private async beat(): Promise<void> {
    if (this.stopping) return;
    this.connectMembers();
    const body = this.heartbeatBody();
    try {
      await this.audit.flush({ keep: new Set(this.runs.keys()) });   // overflow count; round tallies of scenarios no longer running
      // neighbours' signed audit heads are kept: this peer can later attest what each had committed
      for (const [peer, hb] of this.coordinator.heartbeats) await recordWitness(this.store, peer, (hb as { auditHead?: unknown }).auditHead);
      await this.coordinator.publishHeartbeat(body);
      await this.refusals.flush(this.audit, (p) => this.node.roster.current.member(p)?.name ?? p);
      await this.coordinator.enforceDeadlines();
      for (const id of [...this.runs.keys()]) this.settle(id);   // announcements that expired let their prepared workers go
      await this.coordinator.tick();
      // a participant that came back after the end retries until a finished participant gives it the final model
      for (const { signed, view } of this.book.list()) {
        if (view.state === 'finished' && isParticipant(view, this.self) && !view.progress[this.self]?.done) void this.maybeRun(signed.id).catch(() => undefined);
      }
      // anti-entropy every few beats: enough for peers that were away, without filling the audit log with repeats
      if (this.beats++ % REPUBLISH_EVERY === 0) await this.coordinator.republish();
    } catch (e) {
      log.debug({ err: e }, 'heartbeat failed');
    }
  }

  deviceInUse(): string {
    const providers = [...this.runs.values()].map((r) => r.status.provider).filter(Boolean);
    return providers[0] ?? `idle (${this.cfg.compute.providers.join(' > ')})`;
  }

  async statusReport(): Promise<Record<string, unknown>> {
    const disk = statfsSync(this.cfg.dir);
    const conns = this.node.libp2p.getConnections().map((c) => ({ peer: c.remotePeer.toString(), name: this.node.roster.current.member(c.remotePeer)?.name, addr: c.remoteAddr.toString() }));
    return {
      name: this.cfg.name, peerId: this.self, addrs: this.node.multiaddrs(), startedAt: this.startedAt.toISOString(),
      roster: { consortium: this.node.roster.current.consortium, version: this.node.roster.current.version, roles: this.node.roster.current.roles(this.self) },
      connections: conns,
      members: this.node.roster.current.members.filter((m) => m.peerId !== this.self).map((m) => {
        const hb = this.coordinator.heartbeats.get(m.peerId);
        return { name: m.name, peerId: m.peerId, roles: m.roles, connected: conns.some((c) => c.peer === m.peerId),
          lastHeartbeatSecondsAgo: hb ? Math.round((Date.now() - hb.at) / 1000) : null, load: hb?.load ?? null, device: hb?.device ?? null };
      }),
      scenarios: this.book.list().map(({ signed, view }) => ({ id: signed.id, name: signed.manifest.name, state: view.state, running: this.runs.has(signed.id), round: this.runs.get(signed.id)?.status.round,
        // which provider ran each of this peer's graphs, the providers refused and why, nodes ORT left on CPU (issue 14.1)
        ...(this.graphs.has(signed.id) ? { graphs: this.graphs.get(signed.id) } : {}),
        // robust aggregation: each participant's latest signed suspicion report (verified on receipt), by roster name
        suspicions: Object.entries(view.progress).flatMap(([site, p]) => p.suspicion ? [{ by: this.node.roster.current.member(site)?.name ?? site, round: p.suspicion.report.round,
          names: p.suspicion.report.suspects.map((s) => this.node.roster.current.member(s.peer)?.name ?? s.peer) }] : []) })),
      device: this.deviceInUse(),
      disk: { freeBytes: disk.bavail * disk.bsize, totalBytes: disk.blocks * disk.bsize },
      datasets: await this.data.names(),
      privacy: await this.coordinator.ledger?.summary(await this.data.names()) ?? [],
      refused: this.refusals.list().map((r) => ({ ...r, name: this.node.roster.current.member(r.peer)?.name ?? null })),
    };
  }

  /** Dial a peer by multiaddr (admin API: tests and operators connect peers that mDNS/bootstrap did not). */
  async dial(addr: string): Promise<void> {
    await this.node.dial(addr);
  }

  async stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    clearInterval(this.heartbeat);
    this.watchdog.stop();
    this.coordinator.stop();
    await Promise.all([...this.runs.values()].map((r) => r.stop().catch(() => undefined)));
    await this.refusals.flush(this.audit, (p) => this.node.roster.current.member(p)?.name ?? p).catch(() => undefined);
    await this.admin?.close();
    // the network goes first: a model still arriving must be audited before 'stop', which closes the log for this run
    await this.node.stop().catch((e: unknown) => log.warn({ err: e }, 'libp2p stop failed'));
    await this.audit.flush().catch(() => undefined);
    await this.audit.append({ kind: 'stop', to: 'local', what: 'daemon stopped' }).catch(() => undefined);
    await this.store.close();
    log.info('peer daemon stopped');
  }
}

async function ensureIdentity(keyFile: string): Promise<Identity> {
  if (existsSync(keyFile)) return loadIdentity(keyFile);
  const id = await createIdentity(keyFile);
  log.info({ peer: id.peerId.toString(), keyFile }, 'first start: created this peer\'s identity');
  return id;
}

/** The store must exist once the peer has started before (marker file); only the very first start creates it. */
async function openPeerStore(dir: string, minFreeBytes: number): Promise<Store> {
  const marker = join(dir, 'peer-state.json');
  const first = !existsSync(marker);
  const store = await openStore(dir, { create: first, minFreeBytes });
  if (first) writeFileSync(marker, JSON.stringify({ createdAt: new Date().toISOString(), note: 'cohort: this peer has a store; do not delete' }) + '\n');
  return store;
}

