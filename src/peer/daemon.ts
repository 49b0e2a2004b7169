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
import { decodeMessage } from '../averaging/message.ts';
import { createIdentity, loadIdentity, type Identity } from '../net/identity.ts';
import { startNodeFromConfig, type CohortNode } from '../net/node.ts';
import { delta, TERMINAL, type SiteProgress } from '../scenario/lifecycle.ts';
import { AuditLog } from '../store/audit.ts';
import { openStore, type Store } from '../store/db.ts';
import { logger } from '../util/log.ts';
import { startAdminApi, type AdminApi } from './admin.ts';
import { ScenarioBook } from './book.ts';
import { loadDaemonConfig, type DaemonConfig } from './config.ts';
import { Coordinator } from './coordinator.ts';
import { LocalData } from './datasets.ts';
import { DatasetRegistry } from '../store/datasets.ts';
import { runPlanOf } from './plan.ts';
import { adminRoutes } from './routes.ts';
import { ScenarioRun } from './runner.ts';

const log = logger('peer:daemon');
const REPUBLISH_EVERY = 3;

export class Daemon {
  readonly runs = new Map<string, ScenarioRun>();
  private heartbeat: NodeJS.Timeout | undefined;
  private beats = 0;
  private admin: AdminApi | undefined;
  private stopping: Promise<void> | undefined;
  readonly startedAt = new Date();

  private constructor(
    readonly cfg: DaemonConfig,
    readonly identity: Identity,
    readonly store: Store,
    readonly audit: AuditLog,
    readonly node: CohortNode,
    readonly book: ScenarioBook,
    readonly coordinator: Coordinator,
    readonly data: LocalData,
  ) {}

  static async start(configFile: string): Promise<Daemon> {
    const cfg = loadDaemonConfig(configFile);
    const identity = await ensureIdentity(cfg.net.keyFile);
    const store = await openPeerStore(cfg.dir);
    let node: CohortNode | undefined;
    try {
      const audit = await AuditLog.open(store);
      node = await startNodeFromConfig(configFile);
      const book = await ScenarioBook.load(store);
      const data = new LocalData(cfg, new DatasetRegistry(store.datasets));
      const coordinator = new Coordinator(cfg, identity, node, book, audit, data);
      const d = new Daemon(cfg, identity, store, audit, node, book, coordinator, data);
      await d.wire();
      return d;
    } catch (e) {
      await node?.stop().catch(() => undefined);
      await store.close();
      throw e;
    }
  }

  get self(): string {
    return this.identity.peerId.toString();
  }

  private async wire(): Promise<void> {
    await this.audit.append({ kind: 'start', to: 'local', what: `daemon started (${this.cfg.name})` });
    this.node.models.onModel({
      check: (h) => (this.runs.has(h.scenarioId) ? { ok: true } : { ok: false, reason: 'unknown-scenario' }),
      receive: (h, bytes, from) => {
        const run = this.runs.get(h.scenarioId);
        if (!run) return { ok: false, reason: 'unknown-scenario' };
        run.deliver(from.toString(), decodeMessage(bytes));
        const name = this.node.roster.current.member(from)?.name ?? from.toString();
        void this.audit.append({ kind: 'model-received', to: 'local', what: `round ${h.round} model from ${name}`, scenario: h.scenarioId, bytes: h.byteLength, sha256: h.sha256, detail: `from ${from.toString()}` }).catch(() => undefined);
        return { ok: true };
      },
    });
    this.coordinator.onRunnable = (id) => void this.maybeRun(id).catch((e: unknown) => this.runFailed(id, e));
    this.coordinator.onApproved = (id) => this.prepare(id);
    this.book.onChange((id) => this.settle(id));
    this.coordinator.start();
    for (const { signed } of this.book.list()) void this.maybeRun(signed.id).catch((e: unknown) => this.runFailed(signed.id, e));
    this.connectMembers();
    this.heartbeat = setInterval(() => void this.beat(), this.cfg.heartbeatMs);
    this.admin = await startAdminApi(this.cfg.dir, adminRoutes(this), { port: this.cfg.admin.port });
    log.info({ name: this.cfg.name, peer: this.self, addrs: this.node.multiaddrs() }, 'peer daemon ready');
  }

  /** Start this peer's part of a running scenario it takes part in, within the compute budget. */
  private async maybeRun(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry || this.stopping) return;
    const { view } = entry;
    if (view.state !== 'running' || !view.run?.participants.includes(this.self) || view.progress[this.self]?.done) return;
    const run = this.runs.get(id) ?? this.newRun(id);
    if (!run || run.begun) return;
    await run.start(view.run);
  }

  /** A run slot for an approved scenario: the worker loads data and builds the model before the start. */
  private newRun(id: string): ScenarioRun | undefined {
    const entry = this.book.get(id);
    if (!entry || this.runs.has(id)) return this.runs.get(id);
    if (this.runs.size >= this.cfg.compute.maxConcurrentScenarios) {
      log.warn({ scenario: id.slice(0, 12), budget: this.cfg.compute.maxConcurrentScenarios }, 'compute budget full: scenario waits for a slot');
      return undefined;
    }
    const run = new ScenarioRun(this.runHost(), id, runPlanOf(entry.signed.manifest));
    this.runs.set(id, run);
    return run;
  }

  private prepare(id: string): void {
    const run = this.newRun(id);
    run?.prepare().catch((e: unknown) => { if (this.runs.get(id) === run) this.runFailed(id, e); });
  }

  /** A run whose scenario was cancelled or failed stops; a prepared worker whose scenario started without this peer is let go. */
  private settle(id: string): void {
    const run = this.runs.get(id);
    const view = this.book.get(id)?.view;
    if (!run || !view) return;
    const ended = view.state === 'cancelled' || view.state === 'failed';   // a finished run ends itself after its last round
    if (ended || (!run.begun && (TERMINAL.has(view.state) || (view.run && !view.run.participants.includes(this.self))))) {
      if (ended && run.begun) log.info({ scenario: id.slice(0, 12), state: view.state, reason: view.reason }, 'scenario ended: stopping this peer\'s run');
      this.runs.delete(id);
      void run.stop();
    }
  }

  private runHost() {
    return {
      cfg: this.cfg, node: this.node, store: this.store, audit: this.audit, data: this.data,
      publishProgress: async (id: string, p: SiteProgress) => {
        await this.coordinator.applyAndPublish(delta.progress(id, this.self, p), `progress round ${p.round}`);
        if (p.done) this.release(id);
      },
      failed: (id: string, e: unknown) => this.runFailed(id, e),
      stopAt: (id: string) => this.book.get(id)?.view.stopAt,
    };
  }

  /** A finished or failed run frees its slot; a waiting scenario may take it. */
  private release(id: string): void {
    this.runs.delete(id);
    for (const { signed, view } of this.book.list()) if (view.state === 'running') void this.maybeRun(signed.id).catch((e: unknown) => this.runFailed(signed.id, e));
  }

  private runFailed(id: string, e: unknown): void {
    log.error({ scenario: id.slice(0, 12), err: e }, 'scenario run failed on this peer');
    const run = this.runs.get(id);
    this.runs.delete(id);
    void run?.stop();
    const reason = `${this.cfg.name}: ${(e as Error).message}`;
    void this.coordinator.applyAndPublish(delta.state(id, 'failed', reason), 'scenario failed').catch(() => undefined);
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
    const running = [...this.runs.keys()];
    const body = { name: this.cfg.name, load: running.length, device: this.deviceInUse(), scenarios: running };
    try {
      await this.coordinator.publishHeartbeat(body);
      await this.coordinator.enforceDeadlines();
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
      scenarios: this.book.list().map(({ signed, view }) => ({ id: signed.id, name: signed.manifest.name, state: view.state, running: this.runs.has(signed.id), round: this.runs.get(signed.id)?.status.round })),
      device: this.deviceInUse(),
      disk: { freeBytes: disk.bavail * disk.bsize, totalBytes: disk.blocks * disk.bsize },
      datasets: await this.data.names(),
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
    this.coordinator.stop();
    await Promise.all([...this.runs.values()].map((r) => r.stop().catch(() => undefined)));
    await this.admin?.close();
    // the network goes first: a model still arriving must be audited before 'stop', which closes the log for this run
    await this.node.stop().catch((e: unknown) => log.warn({ err: e }, 'libp2p stop failed'));
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
async function openPeerStore(dir: string): Promise<Store> {
  const marker = join(dir, 'peer-state.json');
  const first = !existsSync(marker);
  const store = await openStore(dir, { create: first });
  if (first) writeFileSync(marker, JSON.stringify({ createdAt: new Date().toISOString(), note: 'cohort: this peer has a store; do not delete' }) + '\n');
  return store;
}

