/**
 * Scenario decisions of one peer, driven by gossip and the admin API:
 *   - a verified announcement is stored; the peer declines (no matching data), auto-approves (policy) or waits for the operator;
 *   - the launcher starts the run (round clock + participants) once enough peers approved, and alone may cancel;
 *   - participants run their part (runner.ts) and the launcher marks the scenario finished when every participant is done.
 * Every outbound gossip goes through publish(), which writes the audit log first.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { CohortNode } from '../net/node.ts';
import type { ReceivedGossip } from '../net/pubsub.ts';
import type { AuditLog } from '../store/audit.ts';
import { sha256Hex } from '../util/hash.ts';
import { decide } from '../scenario/approval.ts';
import { approvalsFor, delta, TERMINAL, type ScenarioView } from '../scenario/lifecycle.ts';
import { signScenario, verifyScenario, type SignedScenario } from '../scenario/signing.ts';
import type { Identity } from '../net/identity.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import type { ScenarioBook } from './book.ts';
import type { DaemonConfig } from './config.ts';
import type { LocalData } from './datasets.ts';
import { registerDaemonGossip, sanitiseDelta, ScenarioViewSchema } from './gossip.ts';
import { runPlanOf } from './plan.ts';
import { meanSeries, stopRoundFor } from '../scenario/stopping.ts';

const log = logger('peer:coordinator');

export interface RejectedAnnouncement { readonly id: string; readonly author: string; readonly reason: string; readonly at: string }

export class Coordinator {
  readonly rejected: RejectedAnnouncement[] = [];
  /** Last heartbeat heard from each member: liveness, load and device, for `cohort status`. */
  readonly heartbeats = new Map<string, { name: string; load?: number; device?: string; scenarios?: string[]; at: number }>();
  private readonly waiting = new Map<string, NodeJS.Timeout>();
  private readonly self: string;
  /** Called when this peer should (re)consider running its part of a scenario. */
  onRunnable: (id: string) => void = () => undefined;
  /** Called when this peer approved a scenario (the daemon prepares its training worker). */
  onApproved: (id: string) => void = () => undefined;

  constructor(
    private readonly cfg: DaemonConfig,
    private readonly identity: Identity,
    private readonly node: CohortNode,
    private readonly book: ScenarioBook,
    private readonly audit: AuditLog,
    private readonly data: LocalData,
  ) {
    this.self = identity.peerId.toString();
  }

  start(): void {
    registerDaemonGossip();
    this.node.pubsub.guard('scenario-announce', (m) => this.guardAnnounce(m));
    this.node.pubsub.subscribe(this.node.topics.announce, (m) => this.onGossip(m));
    this.node.pubsub.subscribe(this.node.topics.heartbeat, (m) => {
      if (m.type === 'heartbeat') this.heartbeats.set(m.from.toString(), { ...(m.body as { name: string }), at: Date.now() });
    });
    this.book.onChange((id, view, prev) => this.onViewChange(id, view, prev));
  }

  stop(): void {
    for (const t of this.waiting.values()) clearTimeout(t);
  }

  /** Launch from this peer: only researchers may; the manifest must be one the daemon can run. */
  async launch(manifest: Record<string, unknown>): Promise<SignedScenario> {
    if (!this.node.roster.current.hasRole(this.self, 'researcher')) {
      throw new CohortError('NOT_RESEARCHER', 'this peer has no researcher role on the roster, so it cannot launch scenarios', 'ask the consortium admin for the researcher role, or launch from a researcher\'s peer');
    }
    runPlanOf(manifest);
    const signed = await signScenario(manifest, this.identity);
    if (this.book.has(signed.id)) {
      throw new CohortError('SCENARIO_EXISTS', `this exact manifest was launched before (scenario ${signed.id.slice(0, 12)}, ${this.book.get(signed.id)?.view.state})`,
        'scenario ids are content hashes: set "launch": { "run": 2 } (any new label) in the manifest to run it again');
    }
    await this.audit.append({ kind: 'launch', to: 'local', what: `launched "${String(manifest.name)}"`, scenario: signed.id });
    await this.accept(signed);
    await this.publish({ type: 'scenario-announce', body: signed }, signed.id, 'scenario announcement');
    return signed;
  }

  async answer(id: string, decision: 'approve' | 'reject', reason?: string, rule?: string): Promise<ScenarioView> {
    const entry = this.book.get(id);
    if (!entry) throw new CohortError('UNKNOWN_SCENARIO', `no scenario ${id}`, 'list them with `cohort scenario list`');
    if (TERMINAL.has(entry.view.state)) throw new CohortError('SCENARIO_ENDED', `scenario ${id.slice(0, 12)} is ${entry.view.state}`, 'nothing to decide');
    if (decision === 'approve' && !(await this.data.get(runPlanOf(entry.signed.manifest).dataset))) {
      throw new CohortError('NO_MATCHING_DATA', `this peer has no dataset "${runPlanOf(entry.signed.manifest).dataset}"`, 'add it to the config\'s data section, or reject the scenario');
    }
    const ans = { hash: entry.signed.id, at: new Date().toISOString(), ...(reason ? { reason } : {}) };
    await this.audit.append({ kind: decision === 'approve' ? 'approval' : 'rejection', to: 'local', what: `${decision} ${rule ? `(auto: ${rule})` : '(operator)'}`, scenario: id, sha256: entry.signed.id, ...(reason ? { detail: reason } : {}) });
    const d = decision === 'approve' ? delta.approve(id, this.self, ans) : delta.reject(id, this.self, ans);
    const view = await this.applyAndPublish(d, `${decision} of the scenario`);
    if (decision === 'approve') this.onApproved(id);
    return view;
  }

  async cancel(id: string, reason = 'cancelled by the launcher'): Promise<ScenarioView> {
    const entry = this.book.get(id);
    if (!entry) throw new CohortError('UNKNOWN_SCENARIO', `no scenario ${id}`, 'list them with `cohort scenario list`');
    if (entry.signed.author !== this.self) throw new CohortError('NOT_LAUNCHER', 'only the peer that launched a scenario may cancel it', `cancel it from the launcher's peer (${entry.signed.author})`);
    await this.audit.append({ kind: 'cancel', to: 'local', what: 'cancelled', scenario: id, detail: reason });
    return this.applyAndPublish(delta.state(id, 'cancelled', reason), 'cancellation');
  }

  /** A delta from this peer (progress, state): merge locally, then gossip it. */
  async applyAndPublish(d: ScenarioView, what: string): Promise<ScenarioView> {
    const view = await this.book.apply(d);
    await this.publish({ type: 'scenario-view', body: d }, d.id, what);
    return view;
  }

  async publish(msg: { type: 'scenario-announce'; body: SignedScenario } | { type: 'scenario-view'; body: ScenarioView }, scenario: string, what: string): Promise<void> {
    const bytes = JSON.stringify(msg.body);
    await this.audit.append({ kind: 'gossip-sent', to: `gossip:${this.node.topics.announce}`, what, scenario, bytes: bytes.length, sha256: sha256Hex(bytes) });
    await this.node.pubsub.publish(this.node.topics.announce, msg).catch((e: unknown) => log.warn({ err: e, what }, 'gossip publish failed'));
  }

  async publishHeartbeat(body: { name: string; load: number; device: string; scenarios: string[] }): Promise<void> {
    const bytes = JSON.stringify(body);
    await this.audit.append({ kind: 'gossip-sent', to: `gossip:${this.node.topics.heartbeat}`, what: 'heartbeat', bytes: bytes.length, sha256: sha256Hex(bytes) });
    await this.node.pubsub.publish(this.node.topics.heartbeat, { type: 'heartbeat', body });
  }

  /** Launcher: scenarios past their deadline fail (called with the heartbeat). */
  async enforceDeadlines(now = Date.now()): Promise<void> {
    for (const { signed, view } of this.book.list()) {
      if (signed.author !== this.self || TERMINAL.has(view.state)) continue;
      const { deadlineMs } = runPlanOf(signed.manifest).launch;
      if (deadlineMs > 0 && now > Date.parse(signed.launchedAt) + deadlineMs) {
        await this.audit.append({ kind: 'cancel', to: 'local', what: 'deadline passed: marked failed', scenario: signed.id });
        await this.applyAndPublish(delta.state(signed.id, 'failed', `deadline of ${deadlineMs} ms passed`), 'scenario failed (deadline)');
      }
    }
  }

  /** Anti-entropy: peers that were away hear again what this peer said (its own contributions only; the CRDT makes repeats harmless). */
  async republish(): Promise<void> {
    for (const { signed, view } of this.book.list().slice(-20)) {
      // ended scenarios: the launcher keeps telling late peers for an hour, then stops
      if (TERMINAL.has(view.state) && (signed.author !== this.self || Date.now() - Date.parse(signed.launchedAt) > 3_600_000)) continue;
      if (signed.author === this.self) await this.publish({ type: 'scenario-announce', body: signed }, signed.id, 'scenario announcement (repeat)');
      const mine = sanitiseDelta(view, this.self, signed.author, view.run?.participants ?? []);
      const hasOwn = signed.author === this.self || Object.keys(mine.approvals).length + Object.keys(mine.rejections).length + Object.keys(mine.declines).length + Object.keys(mine.progress).length > 0;
      if (hasOwn) await this.publish({ type: 'scenario-view', body: mine }, signed.id, 'scenario state (repeat)');
    }
  }

  private async guardAnnounce(m: ReceivedGossip): Promise<TopicValidatorResult> {
    const verdict = await verifyScenario(m.body, this.node.roster.current);
    if (verdict.ok) return TopicValidatorResult.Accept;
    const body = m.body as Partial<SignedScenario>;
    this.rejected.push({ id: String(body.id ?? '?'), author: String(body.author ?? '?'), reason: verdict.reason, at: new Date().toISOString() });
    log.warn({ from: m.from.toString(), reason: verdict.reason }, 'scenario announcement rejected');
    return TopicValidatorResult.Reject;
  }

  private async onGossip(m: ReceivedGossip): Promise<void> {
    if (m.type === 'scenario-announce') return void (await this.accept(m.body as SignedScenario));
    if (m.type !== 'scenario-view') return;
    const d = ScenarioViewSchema.parse(m.body) as ScenarioView;
    const entry = this.book.get(d.id);
    const author = entry?.signed.author ?? '';
    await this.book.apply(sanitiseDelta(d, m.from.toString(), author, entry?.view.run?.participants ?? []));
  }

  /** A verified scenario, new to this peer: store it and answer by policy. */
  private async accept(signed: SignedScenario): Promise<void> {
    if (!(await this.book.addManifest(signed))) return;
    const view = this.book.get(signed.id)?.view;
    if (!view || TERMINAL.has(view.state) || view.approvals[this.self] || view.rejections[this.self] || view.declines[this.self]) return;
    let dataset: string;
    try {
      dataset = runPlanOf(signed.manifest).dataset;
    } catch (e) {
      return void (await this.decline(signed.id, `cannot run this manifest: ${(e as Error).message}`));
    }
    if (!(await this.data.get(dataset))) return void (await this.decline(signed.id, `no local dataset "${dataset}"`));
    const d = decide(this.cfg.approval, signed, this.node.roster.current);
    if (d.auto) await this.answer(signed.id, 'approve', undefined, d.rule);
    else log.info({ scenario: signed.id.slice(0, 12), name: signed.manifest.name }, 'scenario waits for the operator: cohort scenario approve|reject');
  }

  private async decline(id: string, reason: string): Promise<void> {
    await this.audit.append({ kind: 'decline', to: 'local', what: 'declined', scenario: id, detail: reason });
    await this.applyAndPublish(delta.decline(id, this.self, { hash: id, reason, at: new Date().toISOString() }), 'decline of the scenario');
  }

  private onViewChange(id: string, view: ScenarioView, _prev: ScenarioView): void {
    const entry = this.book.get(id);
    if (!entry) return;
    if (entry.signed.author === this.self && (view.state === 'announced' || view.state === 'approved')) this.considerStart(id);
    if (view.state === 'running' && view.run?.participants.includes(this.self)) this.onRunnable(id);
    if (view.state !== 'running' || !view.run) return;
    const isAuthor = entry.signed.author === this.self;
    if (isAuthor && view.stopAt === undefined) void this.checkStopping(id).catch((e: unknown) => log.warn({ err: e }, 'stopping rule failed'));
    // the launcher, or any participant (the launcher may be offline), declares the end once every participant is done
    if ((isAuthor || view.run.participants.includes(this.self)) && view.run.participants.every((p) => view.progress[p]?.done)) {
      void this.applyAndPublish(delta.state(id, 'finished'), 'scenario finished').catch(() => undefined);
    }
  }

  /** Launcher: apply the manifest's stopping rule to the per-round mean metric of all participants. */
  private async checkStopping(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry?.view.run || entry.view.stopAt !== undefined) return;
    const m = runPlanOf(entry.signed.manifest).manifest;
    if (m.rounds.stopping.kind === 'max-rounds') return;
    const series = meanSeries(await this.book.history(id), entry.view.run.participants);
    const stopAt = stopRoundFor(m.rounds.stopping, series, { maximize: m.task.metric !== 'loss', maxRounds: m.rounds.max });
    if (stopAt === undefined || stopAt >= m.rounds.max || this.book.get(id)?.view.stopAt !== undefined) return;
    log.info({ scenario: id.slice(0, 12), stopAt, rule: m.rounds.stopping.kind }, 'stopping rule fired');
    await this.applyAndPublish(delta.stopAt(id, stopAt), `stop after round ${stopAt - 1} (${m.rounds.stopping.kind})`);
  }

  /** Launcher: start when minPeers approved and either everybody answered or the approval window passed. */
  private considerStart(id: string): void {
    const entry = this.book.get(id);
    if (!entry || (entry.view.state !== 'announced' && entry.view.state !== 'approved')) return;
    const plan = runPlanOf(entry.signed.manifest).launch;
    const approved = approvalsFor(entry.view, id);
    if (approved.length < plan.minPeers) return;
    // who could still answer: data providers that are connected now (an absent site must not hold everyone up)
    const connected = new Set(this.node.libp2p.getConnections().map((c) => c.remotePeer.toString()));
    const others = this.node.roster.current.members
      .filter((m) => m.roles.includes('data-provider') && (m.peerId === this.self || connected.has(m.peerId))).map((m) => m.peerId);
    const answered = new Set([...Object.keys(entry.view.approvals), ...Object.keys(entry.view.rejections), ...Object.keys(entry.view.declines)]);
    const go = (): void => {
      this.waiting.delete(id);
      const now = this.book.get(id);
      if (!now || (now.view.state !== 'announced' && now.view.state !== 'approved')) return;
      const run = { startAt: Date.now() + plan.startDelayMs, participants: approvalsFor(now.view, id) };
      void this.applyAndPublish(delta.run(id, run), 'scenario start').catch((e: unknown) => log.error({ err: e }, 'start failed'));
    };
    if (others.every((p) => answered.has(p))) return go();
    if (this.waiting.has(id)) return;
    // enough approvals: visible as `approved` while the others still have the approval window to answer
    this.waiting.set(id, setTimeout(go, plan.approvalWindowMs));
    void this.applyAndPublish(delta.state(id, 'approved'), 'scenario approved by enough peers').catch(() => undefined);
  }
}
