/**
 * Scenario decisions of one peer, driven by gossip and the admin API:
 *   - a verified announcement is stored; the peer declines (no matching data), auto-approves (policy) or waits for the operator;
 *     every answer is signed and bound to the manifest hash;
 *   - the launcher starts the run (round clock + participants with their signed approvals) once enough peers approved, admits
 *     late approvers from a later round, and alone may cancel;
 *   - participants run their part (runner.ts); every peer judges the end by the participant rule (src/scenario/participants.ts)
 *     on its merged view: nobody's word ends a scenario but the launcher's.
 * Incoming claims go through sanitiseDelta (gossip.ts): what a sender may not say is dropped and counted in `refusals`.
 * Every outbound gossip goes through publish(), which redacts reasons and writes the audit log first.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub';
import type { CohortNode } from '../net/node.ts';
import type { ReceivedGossip } from '../net/pubsub.ts';
import type { AuditLog } from '../store/audit.ts';
import { sha256Hex } from '../util/hash.ts';
import { decide, privacyDecline } from '../scenario/approval.ts';
import { dpOf, privacyUnsupported, type PeerLedger } from '../privacy/peer-ledger.ts';
import { approvalsFor, delta, TERMINAL, type ScenarioView } from '../scenario/lifecycle.ts';
import { signScenario, verifyScenario, type SignedScenario } from '../scenario/signing.ts';
import { clockRound, endOf, participantsOf, roundsToRun, signAnswer, standing, verifyAnswer, verifyRunPlan, type EndRule } from '../scenario/participants.ts';
import { redact } from '../util/redact.ts';
import type { Refusals } from './refusals.ts';
import type { Identity } from '../net/identity.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import type { ScenarioBook } from './book.ts';
import type { DaemonConfig } from './config.ts';
import type { LocalData } from './datasets.ts';
import { ownContribution, redactView, registerDaemonGossip, sanitiseDelta, ScenarioViewSchema, type ClaimRefusal } from './gossip.ts';
import { runPlanOf } from './plan.ts';
import { admit, MAX_ANNOUNCE_BYTES, type CheckResult } from './admission.ts';
import { meanSeries, stopRoundFor } from '../scenario/stopping.ts';
import { suspicionAudit, verifySuspicion } from '../scenario/suspicion.ts';

const log = logger('peer:coordinator');
/** Heartbeats between two anti-entropy republishes (REPUBLISH_EVERY in daemon.ts). */
const ANTI_ENTROPY_BEATS = 3;

export interface RejectedAnnouncement { readonly id: string; readonly author: string; readonly reason: string; readonly at: string }

/** What a heartbeat says of a peer's readiness for a scenario's start (the launcher's readiness barrier reads it). */
export type ReadinessBeat = {
  /** Scenarios whose training worker is ready (data loaded, model built). */
  readonly ready?: readonly string[];
  /** Scenarios whose worker is ready but whose consortium standardiser is not agreed yet (agreed before the start). */
  readonly standardising?: readonly string[];
  /** The hash of the standardiser agreed per scenario, once agreed. */
  readonly standardisers?: Readonly<Record<string, string>>;
  /** Launcher only: the round-0 participants it fixed for a scenario whose start it is about to publish. */
  readonly forming?: Readonly<Record<string, readonly string[]>>;
};

/**
 * The readiness barrier's test for one participant (docs/daemon.md, start protocol): its worker is ready and, where its data needs
 * a consortium standardiser, that standardiser is agreed. Before that the participant does not count as ready.
 */
export function readyForStart(beat: ReadinessBeat | undefined, id: string): boolean {
  return (beat?.ready ?? []).includes(id) && !(beat?.standardising ?? []).includes(id);
}

/** A run as its peer's heartbeat reports it (ScenarioRun). */
export interface RunReadiness { readonly workerReady: boolean; readonly standardising: boolean; readonly agreedHash: string | undefined }

/** What a peer's heartbeat says of its runs (the daemon's heartbeat body; readyForStart reads it at the launcher). */
export function readinessBeat(runs: Iterable<readonly [string, RunReadiness]>): { ready: string[]; standardising: string[]; standardisers: Record<string, string> } {
  const all = [...runs];
  return {
    ready: all.filter(([, r]) => r.workerReady).map(([id]) => id),
    standardising: all.filter(([, r]) => r.standardising).map(([id]) => id),
    standardisers: Object.fromEntries(all.flatMap(([id, r]) => (r.agreedHash ? [[id, r.agreedHash]] : []))),
  };
}

/** A launcher's `forming` entry as heard (unchecked gossip): the participant list, or undefined when malformed. */
function formingList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.length <= 1000 && v.every((p) => typeof p === 'string') ? v as string[] : undefined;
}

export class Coordinator {
  readonly rejected: RejectedAnnouncement[] = [];
  /** Last heartbeat heard from each member: liveness, load and device, for `cohort status`. */
  readonly heartbeats = new Map<string, { name: string; load?: number; device?: string; scenarios?: string[]; at: number } & ReadinessBeat>();
  /** Whether this peer's own training worker for a scenario is ready (set by the daemon; the readiness barrier asks it). */
  locallyReady: (id: string) => boolean = () => false;
  private readonly starting = new Set<string>();
  private readonly waiting = new Map<string, NodeJS.Timeout>();
  /** Views heard for scenarios whose announcement has not arrived yet: applied once it does (bounded). */
  private readonly early = new Map<string, { d: ScenarioView; from: string }[]>();
  private readonly ending = new Set<string>();
  private readonly admitting = new Set<string>();
  private readonly self: string;
  /** Called when this peer should (re)consider running its part of a scenario. */
  onRunnable: (id: string) => void = () => undefined;
  /** Called when this peer approved a scenario (the daemon prepares its training worker). */
  onApproved: (id: string) => void = () => undefined;
  /** Called when the launcher fixed the round-0 participants (this peer among them): the standardiser is agreed before the start. */
  onForming: (id: string, participants: readonly string[]) => void = () => undefined;
  /** Publish a heartbeat now (the daemon builds it): the launcher's `forming` reaches the participants without a heartbeat's wait. */
  beatNow: () => void = () => undefined;
  /** Launcher: scenarios in the readiness barrier, with the round-0 participants fixed for them (carried by its heartbeat). */
  private readonly forming = new Map<string, string[]>();
  /** `forming` entries already acted on (scenario|participants). */
  private readonly formingHeard = new Set<string>();

  constructor(
    private readonly cfg: DaemonConfig,
    private readonly identity: Identity,
    private readonly node: CohortNode,
    private readonly book: ScenarioBook,
    private readonly audit: AuditLog,
    private readonly data: LocalData,
    private readonly refusals: Refusals,
    /** The lifetime privacy budget per dataset (src/privacy/peer-ledger.ts); absent in tests that build a bare coordinator. */
    readonly ledger?: PeerLedger,
  ) {
    this.self = identity.peerId.toString();
  }

  start(): void {
    registerDaemonGossip();
    this.node.pubsub.guard('scenario-announce', (m) => this.guardAnnounce(m));
    this.node.pubsub.subscribe(this.node.topics.announce, (m) => this.onGossip(m));
    this.node.pubsub.subscribe(this.node.topics.heartbeat, (m) => {
      if (m.type !== 'heartbeat') return;
      this.heartbeats.set(m.from.toString(), { ...(m.body as { name: string }), at: Date.now() });
      const forming = (m.body as { forming?: unknown }).forming;
      if (forming && typeof forming === 'object') for (const [id, ps] of Object.entries(forming)) this.heardForming(id, formingList(ps), m.from.toString());
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
    const size = Buffer.byteLength(JSON.stringify({ type: 'scenario-announce', body: signed }));
    if (size > MAX_ANNOUNCE_BYTES) {
      throw new CohortError('MANIFEST_TOO_LARGE', `the signed manifest is ${size} bytes; announcements above ${MAX_ANNOUNCE_BYTES} bytes would not reach the other peers (gossip drops them)`,
        'keep data.preprocessing and descriptions small; large settings belong in the peers\' data, not the manifest');
    }
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
    if (decision === 'approve' && !rule) {
      const verdict = await this.admission(id);
      if (verdict.decision === 'decline') {
        throw new CohortError('ADMISSION_DECLINED', `this peer's admission policy refuses the scenario: ${verdict.reasons.join('; ')}`, 'raise the limits in the admission section of cohort.json (docs/daemon.md), or reject the scenario');
      }
    }
    // the lifetime privacy budget (docs/privacy.md): the scenario's epsilon is reserved on its dataset before the approval leaves
    if (decision === 'approve') await this.reservePrivacy(id, entry.signed.manifest);
    const ans = await signAnswer(id, decision, { hash: entry.signed.id, at: new Date().toISOString(), ...(reason ? { reason: redact(reason) } : {}) }, this.identity);
    await this.audit.append({ kind: decision === 'approve' ? 'approval' : 'rejection', to: 'local', what: `${decision} ${rule ? `(auto: ${rule})` : '(operator)'}`, scenario: id, sha256: entry.signed.id, ...(reason ? { detail: reason } : {}) });
    const d = decision === 'approve' ? delta.approve(id, this.self, ans) : delta.reject(id, this.self, ans);
    const view = await this.applyAndPublish(d, `${decision} of the scenario`);
    if (decision === 'approve') this.onApproved(id);
    return view;
  }

  /** Reserve a DP scenario's epsilon on its dataset (PRIVACY_BUDGET when the lifetime budget would be exceeded). */
  private async reservePrivacy(id: string, manifest: Record<string, unknown>): Promise<void> {
    const dp = dpOf(manifest);
    if (!dp || !this.ledger) return;
    await this.ledger.reserve(runPlanOf(manifest).dataset, id, dp.epsilon, dp.delta);
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
    if (msg.type === 'scenario-view') msg = { type: 'scenario-view', body: redactView(msg.body) };
    const bytes = JSON.stringify(msg.body);
    await this.audit.append({ kind: 'gossip-sent', to: `gossip:${this.node.topics.announce}`, what, scenario, bytes: bytes.length, sha256: sha256Hex(bytes) });
    await this.node.pubsub.publish(this.node.topics.announce, msg).catch((e: unknown) => log.warn({ err: e, what }, 'gossip publish failed'));
  }

  async publishHeartbeat(body: { name: string; load: number; device: string; scenarios: string[] } & ReadinessBeat): Promise<void> {
    if (this.forming.size) body = { ...body, forming: Object.fromEntries(this.forming) };
    const bytes = JSON.stringify(body);
    await this.audit.append({ kind: 'gossip-sent', to: `gossip:${this.node.topics.heartbeat}`, what: 'heartbeat', bytes: bytes.length, sha256: sha256Hex(bytes) });
    await this.node.pubsub.publish(this.node.topics.heartbeat, { type: 'heartbeat', body });
  }

  /**
   * This peer's admission verdict on a known scenario (src/peer/admission.ts): estimate from the manifest and the local data's
   * shapes, checked against the admission policy and the compute slots + queue (approved scenarios not ended, this one excluded).
   */
  async admission(id: string): Promise<CheckResult> {
    const entry = this.book.get(id);
    if (!entry) throw new CohortError('UNKNOWN_SCENARIO', `no scenario ${id}`, 'list them with `cohort scenario list`');
    let plan;
    try {
      plan = runPlanOf(entry.signed.manifest);
    } catch (e) {
      return { decision: 'decline', reasons: [(e as Error).message] };
    }
    const peers = this.node.roster.current.members.filter((m) => m.roles.includes('data-provider')).length;
    return admit(this.cfg, plan, await this.data.get(plan.dataset), { peers, queued: this.committed().filter((x) => x !== id).length });
  }

  /** Scenarios this peer approved that have not ended for it (running, or waiting to start and not expired). */
  committed(): string[] {
    return this.book.list().filter(({ signed, view }) => view.approvals[this.self] && !TERMINAL.has(view.state) && !this.expired(signed.id)
      && !view.progress[this.self]?.done && !view.progress[this.self]?.failed && (!view.run || participantsOf(view).includes(this.self)))
      .map(({ signed }) => signed.id);
  }

  /**
   * Announced or approved, and not started within launch.startWithinMs (capped by this peer's admission.startWithinMs) of its
   * launch: nobody holds anything for it any more (the launcher marks it failed; if the launcher is gone, every peer still lets it go).
   */
  expired(id: string, now = Date.now()): boolean {
    const entry = this.book.get(id);
    if (!entry || (entry.view.state !== 'announced' && entry.view.state !== 'approved')) return false;
    let within = this.cfg.admission.startWithinMs;
    try {
      within = Math.min(within, runPlanOf(entry.signed.manifest).launch.startWithinMs);
    } catch { /* a manifest this peer cannot run: its own limit */ }
    return now > Date.parse(entry.signed.launchedAt) + within;
  }

  /** Launcher: scenarios past their deadline fail (called with the heartbeat). */
  async enforceDeadlines(now = Date.now()): Promise<void> {
    for (const { signed, view } of this.book.list()) {
      if (signed.author !== this.self || TERMINAL.has(view.state)) continue;
      if (this.expired(signed.id, now)) {
        const { startWithinMs } = runPlanOf(signed.manifest).launch;
        await this.audit.append({ kind: 'cancel', to: 'local', what: 'not started in time: marked failed', scenario: signed.id });
        await this.applyAndPublish(delta.state(signed.id, 'failed', `expired: not started within ${Math.min(startWithinMs, this.cfg.admission.startWithinMs)} ms of its launch`), 'scenario failed (expired before the start)');
        continue;
      }
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
      // ended scenarios: the launcher keeps telling late peers for an hour, then stops; so does a participant about its own end
      // (done or failed: its view may have ended on its own judgement before the others heard why, e.g. a refusal right after a restart)
      if (TERMINAL.has(view.state) && ((signed.author !== this.self && !view.progress[this.self]) || Date.now() - Date.parse(signed.launchedAt) > 3_600_000)) continue;
      if (signed.author === this.self) await this.publish({ type: 'scenario-announce', body: signed }, signed.id, 'scenario announcement (repeat)');
      const mine = ownContribution(view, this.self, signed.author);
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
    if (!this.book.has(d.id)) {
      // its announcement is still on the way: judge the claims once the author is known
      const box = this.early.get(d.id) ?? [];
      if (box.length < 50 && this.early.size < 200) this.early.set(d.id, [...box, { d, from: m.from.toString() }]);
      return;
    }
    await this.applyClaims(d, m.from.toString());
  }

  /** A delta heard from `from`: check signatures and the run plan, keep what `from` may say, count what it may not. */
  private async applyClaims(d0: ScenarioView, from: string): Promise<void> {
    const entry = this.book.get(d0.id);
    if (!entry) return;
    const author = entry.signed.author;
    const refused: ClaimRefusal[] = [];
    let d = d0;
    for (const [kind, decision] of [['approvals', 'approve'], ['rejections', 'reject'], ['declines', 'decline']] as const) {
      const a = d[kind][from];
      if (a && !(await verifyAnswer(d.id, decision, from, a))) {
        refused.push('bad-signature');
        d = { ...d, [kind]: {} };
      }
    }
    if (d.run && from === author) {
      const v = await verifyRunPlan(d.id, d.run, this.node.roster.current);
      if (!v.ok) {
        refused.push('bad-run-plan');
        log.warn({ scenario: d.id.slice(0, 12), reason: v.reason }, 'run plan refused');
        const { run: _run, ...rest } = d;
        d = { ...rest, state: d.state === 'running' ? entry.view.state : d.state };
      }
    }
    d = await this.checkSuspicion(d, from, refused);
    const participants = [...new Set([...participantsOf(entry.view), ...(from === author ? participantsOf(d) : [])])];
    // progress heard before the run plan cannot be judged yet (the sender repeats it): dropped without counting
    if (participants.length === 0) d = { ...d, progress: {} };
    const r = sanitiseDelta(d, from, author, participants);
    for (const reason of [...refused, ...r.refused]) {
      this.refusals.record({ scenario: d.id, peer: from, channel: 'gossip', reason });
      log.warn({ scenario: d.id.slice(0, 12), from, reason }, 'scenario claim refused');
    }
    await this.book.apply(r.delta);
  }

  /** Reports already audited, by scenario/reporter: the names they carried (a repeated report is not audited again). */
  private readonly suspicionsSeen = new Map<string, string>();

  /** A suspicion report in `from`'s progress (robust aggregation): kept and audited when signed by `from`, else dropped and refused. */
  private async checkSuspicion(d: ScenarioView, from: string, refused: ClaimRefusal[]): Promise<ScenarioView> {
    const p = d.progress[from];
    const s = p?.suspicion;
    if (!p || !s) return d;
    if (s.report.reporter !== from || s.report.scenario !== d.id || !(await verifySuspicion(s))) {
      refused.push('bad-signature');
      const { suspicion: _dropped, ...rest } = p;
      return { ...d, progress: { ...d.progress, [from]: rest } };
    }
    const names = s.report.suspects.map((x) => x.peer).join(',');
    if (this.suspicionsSeen.get(`${d.id}/${from}`) !== names) {
      this.suspicionsSeen.set(`${d.id}/${from}`, names);
      await this.audit.append(suspicionAudit(s, { received: true }));
    }
    return d;
  }


  /** A verified scenario, new to this peer: store it and answer by policy. */
  private async accept(signed: SignedScenario): Promise<void> {
    if (!(await this.book.addManifest(signed))) return;
    const early = this.early.get(signed.id) ?? [];
    this.early.delete(signed.id);
    for (const e of early) await this.applyClaims(e.d, e.from);
    const view = this.book.get(signed.id)?.view;
    if (!view || TERMINAL.has(view.state) || view.approvals[this.self] || view.rejections[this.self] || view.declines[this.self]) return;
    let dataset: string;
    try {
      dataset = runPlanOf(signed.manifest).dataset;
    } catch (e) {
      return void (await this.decline(signed.id, `cannot run this manifest: ${(e as Error).message}`));
    }
    if (!(await this.data.get(dataset))) return void (await this.decline(signed.id, `no local dataset "${dataset}"`));
    if (this.expired(signed.id)) return void (await this.decline(signed.id, 'announcement expired before this peer heard it'));
    // admission control: estimate and limits before anything is allocated for the scenario
    const verdict = await this.admission(signed.id);
    if (verdict.decision === 'decline') {
      log.warn({ scenario: signed.id.slice(0, 12), reasons: verdict.reasons }, 'scenario declined by the admission policy');
      return void (await this.decline(signed.id, `admission: ${verdict.reasons.join('; ')}`, verdict));
    }
    // privacy (docs/privacy.md): this peer's policy first (its reason, the lifetime budget with the ledger's spent epsilon), then
    // settings the daemon cannot honour: declined rather than run unprotected
    const privacyWhy = privacyDecline(this.cfg.approval, signed.manifest, (await this.ledger?.spent(dataset)) ?? 0)
      ?? privacyUnsupported(signed.manifest);
    if (privacyWhy) return void (await this.decline(signed.id, `privacy: ${privacyWhy}`));
    const d = decide(this.cfg.approval, signed, this.node.roster.current);
    if (d.auto) {
      try {
        await this.answer(signed.id, 'approve', undefined, d.rule);
      } catch (e) {
        // another scenario reserved the budget meanwhile: declined with the ledger's reason
        if (e instanceof CohortError && e.code === 'PRIVACY_BUDGET') return void (await this.decline(signed.id, `privacy: ${e.message}`));
        throw e;
      }
    }
    else log.info({ scenario: signed.id.slice(0, 12), name: signed.manifest.name }, 'scenario waits for the operator: cohort scenario approve|reject');
  }

  private async decline(id: string, reason: string, verdict?: CheckResult): Promise<void> {
    await this.audit.append({ kind: 'decline', to: 'local', what: 'declined', scenario: id, detail: verdict?.estimate ? JSON.stringify({ reason, estimate: verdict.estimate }) : reason });
    const ans = await signAnswer(id, 'decline', { hash: id, reason: redact(reason), at: new Date().toISOString() }, this.identity);
    await this.applyAndPublish(delta.decline(id, this.self, ans), 'decline of the scenario');
  }

  private onViewChange(id: string, view: ScenarioView, _prev: ScenarioView): void {
    const entry = this.book.get(id);
    if (!entry) return;
    if (entry.signed.author === this.self && (view.state === 'announced' || view.state === 'approved')) this.considerStart(id);
    if ((view.state === 'running' || view.state === 'finished') && participantsOf(view).includes(this.self)) this.onRunnable(id);
    if (view.state !== 'running' || !view.run) return;
    const isAuthor = entry.signed.author === this.self;
    if (isAuthor && view.stopAt === undefined) void this.checkStopping(id).catch((e: unknown) => log.warn({ err: e }, 'stopping rule failed'));
    if (isAuthor) void this.admitLate(id).catch((e: unknown) => log.warn({ err: e }, 'admission failed'));
    void this.judgeEnd(id).catch((e: unknown) => log.warn({ err: e }, 'end rule failed'));
  }

  /** Heartbeat: the end rule depends on the clock too (silent participants are dropped after a few rounds). */
  async tick(): Promise<void> {
    for (const { signed, view } of this.book.list()) if (view.state === 'running') await this.judgeEnd(signed.id);
  }

  /** When this peer started: until it has heard the others again, what it knows of a run it was away from is stale. */
  private readonly startedAt = Date.now();

  /**
   * A `failed` verdict that counts silent participants (dropped, not known to have failed) as not finished is only as good as
   * this peer's view, and `failed` outranks `finished` for ever. A peer back from being away (killed during the run, restarted
   * after its end) first hears the others' "done" one by one through anti-entropy: judged in between, it saw too few done and
   * failed the scenario on its own, then never took the final model (the intermittent catch-up e2e). Such a verdict is left to
   * the launcher while the launcher is heard, and taken by anyone only once this peer has been up for the silence window plus
   * two anti-entropy periods (the launcher too: its verdict is gossiped to everyone).
   * Nor is a participant silent while its heartbeat says it still runs the scenario: after the last round it evaluates, trains
   * the local-only baseline and exports, which on a loaded machine (load ~45) outlasted the silence window and failed a scenario
   * whose participants were about to report done. It is waited for up to five silence windows, then judged as before.
   */
  private mayBeStale(view: ScenarioView, rule: EndRule, author: string, roundMs: number): boolean {
    if (standing(view, rule).dropped.length === 0) return false;
    const settleMs = (rule.dropAfterRounds + 1) * roundMs + 2 * ANTI_ENTROPY_BEATS * this.cfg.heartbeatMs;
    return (author !== this.self && this.heardRecently(author)) || Date.now() - this.startedAt < settleMs;
  }

  /** A heartbeat from `p` within the last three heartbeat periods. */
  private heardRecently(p: string): boolean {
    return Date.now() - (this.heartbeats.get(p)?.at ?? 0) < 3 * this.cfg.heartbeatMs;
  }

  /**
   * A participant dropped for silence whose heartbeat says it still runs the scenario (up to five silence windows): waited for
   * before either verdict. Before 'finished' too: at load ~35 a participant still evaluating after the last round was dropped
   * and the scenario finished without its "done" (the two-scenario daemon e2e then saw a participant not done in the result).
   */
  private droppedStillRunning(view: ScenarioView, rule: EndRule): boolean {
    const stillRunning = (p: string): boolean => (p === this.self ? this.locallyReady(view.id) : this.heardRecently(p) && (this.heartbeats.get(p)?.scenarios ?? []).includes(view.id));
    return standing(view, rule).dropped.some((d) => rule.clockRound <= d.lastRound + 5 * rule.dropAfterRounds && stillRunning(d.peer));
  }

  private roundNow(id: string): number {
    const entry = this.book.get(id);
    if (!entry?.view.run) return -1;
    return clockRound(entry.view.run, runPlanOf(entry.signed.manifest).manifest.averaging.roundMs);
  }

  /**
   * Every peer applies the end rule to its own merged view; only the launcher gossips the result (for peers that were away).
   * A participant's "done" or "failed" counts for that participant only.
   */
  private async judgeEnd(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry?.view.run || entry.view.state !== 'running' || this.ending.has(id)) return;
    const plan = runPlanOf(entry.signed.manifest);
    const rule: EndRule = {
      clockRound: this.roundNow(id), dropAfterRounds: plan.launch.dropAfterRounds, minPeers: plan.launch.minPeers,
      rounds: roundsToRun(plan.manifest.rounds.max, entry.view.stopAt),
    };
    const end = endOf(entry.view, rule);
    if (!end || this.droppedStillRunning(entry.view, rule)) return;
    if (end.state === 'failed' && this.mayBeStale(entry.view, rule, entry.signed.author, plan.manifest.averaging.roundMs)) return;
    this.ending.add(id);
    const d = delta.state(id, end.state, end.reason);
    try {
      if (entry.signed.author === this.self) await this.applyAndPublish(d, `scenario ${end.state}`);
      else await this.book.apply(d);
    } finally {
      this.ending.delete(id);
    }
  }

  /**
   * Launcher: a signed approval that arrives after the start is admitted from a later round (two rounds ahead, so that the
   * late peer hears it and prepares), while rounds are left; the admission travels in the run plan with the approval.
   */
  private async admitLate(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry?.view.run || entry.view.state !== 'running') return;
    const plan = runPlanOf(entry.signed.manifest);
    const rounds = roundsToRun(plan.manifest.rounds.max, entry.view.stopAt);
    const inRun = new Set(participantsOf(entry.view));
    for (const peer of approvalsFor(entry.view, id)) {
      const approval = entry.view.approvals[peer];
      const key = `${id}|${peer}`;
      if (inRun.has(peer) || !approval?.sig || this.admitting.has(key)) continue;
      const fromRound = Math.max(1, this.roundNow(id) + 2);
      if (fromRound >= rounds) continue;
      this.admitting.add(key);
      const name = this.node.roster.current.member(peer)?.name ?? peer;
      await this.audit.append({ kind: 'approval', to: 'local', what: `admitted late approver ${name} from round ${fromRound}`, scenario: id });
      await this.applyAndPublish(delta.admit(id, entry.view.run, peer, { fromRound, approval }), `admission of ${name} from round ${fromRound}`);
    }
  }

  /** Launcher: apply the manifest's stopping rule to the per-round mean metric of all participants. */
  private async checkStopping(id: string): Promise<void> {
    const entry = this.book.get(id);
    if (!entry?.view.run || entry.view.stopAt !== undefined) return;
    const m = runPlanOf(entry.signed.manifest).manifest;
    if (m.rounds.stopping.kind === 'max-rounds') return;
    const series = meanSeries(await this.book.history(id), entry.view.run.participants);
    const fired = stopRoundFor(m.rounds.stopping, series, { maximize: m.task.metric !== 'loss', maxRounds: m.rounds.max });
    if (fired === undefined) return;
    // one round ahead of where the participants are, not of the series: the series lags the clock (metrics arrive by gossip, a
    // loaded launcher judges late). A stop behind a participant's progress would never finish the run: its "done" at round
    // stopAt-1 ranks below its own later progress in the merge (seen: stopAt 2 published while participants were in round 4-6)
    const reached = Math.max(this.roundNow(id), ...Object.values(entry.view.progress).map((p) => p.round));
    const stopAt = Math.max(fired, reached + 2);
    if (stopAt >= m.rounds.max || this.book.get(id)?.view.stopAt !== undefined) return;
    log.info({ scenario: id.slice(0, 12), stopAt, rule: m.rounds.stopping.kind }, 'stopping rule fired');
    await this.applyAndPublish(delta.stopAt(id, stopAt), `stop after round ${stopAt - 1} (${m.rounds.stopping.kind})`);
  }

  /**
   * A launcher's `forming` (its heartbeat): it fixed the round-0 participants of its scenario. A participant among them agrees the
   * consortium standardiser with the others now, so that the launcher's barrier can count it ready (readyForStart).
   */
  private heardForming(id: string, participants: string[] | undefined, from: string): void {
    const entry = this.book.get(id);
    if (!participants || !entry || entry.signed.author !== from || entry.view.run || TERMINAL.has(entry.view.state) || !participants.includes(this.self)) return;
    const key = `${id}|${[...participants].sort().join()}`;
    if (this.formingHeard.has(key)) return;
    this.formingHeard.add(key);
    this.onForming(id, participants);
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
      if (!now || (now.view.state !== 'announced' && now.view.state !== 'approved') || this.expired(id) || this.starting.has(id)) return;
      this.starting.add(id);
      const participants = approvalsFor(now.view, id).filter((p) => now.view.approvals[p]?.sig);
      // readiness barrier (docs/daemon.md, start protocol): the round-0 participants are fixed now and told (heartbeat `forming`);
      // round 0's time is fixed once every one of them is ready for it: its training worker ready and its consortium standardiser
      // agreed with the others (readyForStart), or at the timeout (a slow peer then joins late, the report shows its rounds)
      this.forming.set(id, participants);
      if (participants.includes(this.self)) this.onForming(id, participants);
      this.beatNow();
      const until = Date.now() + plan.readyTimeoutMs;
      const ready = (p: string): boolean => (p === this.self ? this.locallyReady(id) : readyForStart(this.heartbeats.get(p), id));
      const publish = (): void => {
        const latest = this.book.get(id);
        if (!latest || (latest.view.state !== 'announced' && latest.view.state !== 'approved') || this.expired(id)) {
          this.forming.delete(id);
          return void this.starting.delete(id);
        }
        const waiting = participants.filter((p) => !ready(p));
        if (waiting.length > 0 && Date.now() < until) return void setTimeout(publish, 250).unref();
        if (waiting.length > 0) log.warn({ scenario: id.slice(0, 12), notReady: waiting.map((p) => this.node.roster.current.member(p)?.name ?? p) }, 'readiness timeout: starting without waiting for these workers (their standardiser is agreed after the start)');
        this.forming.delete(id);
        const run = { startAt: Date.now() + plan.startDelayMs, participants, approvals: Object.fromEntries(participants.map((p) => [p, latest.view.approvals[p]!])) };
        void this.applyAndPublish(delta.run(id, run), 'scenario start').catch((e: unknown) => log.error({ err: e }, 'start failed'));
      };
      publish();
    };
    if (others.every((p) => answered.has(p))) return go();
    if (this.waiting.has(id)) return;
    // enough approvals: visible as `approved` while the others still have the approval window to answer
    this.waiting.set(id, setTimeout(go, plan.approvalWindowMs));
    void this.applyAndPublish(delta.state(id, 'approved'), 'scenario approved by enough peers').catch(() => undefined);
  }
}

