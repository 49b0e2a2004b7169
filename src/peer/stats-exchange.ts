/**
 * The pre-round exchange that agrees one standardiser for a scenario (issue 13.1), before round 0's training.
 *
 * Choice: an exact exchange among the run's participants (every one's statistics to every one, one decider), not a push-sum average. Participant sets are small (hospitals), the
 * statistics are a few numbers per feature, and exactness is the point: every peer must end up with the *same* standardiser (the
 * same hash in every report, one standardiser for the export), which push-sum only approaches. Messages travel on the model path
 * (/cohort/model/1), so the participant rule (src/peer/daemon.ts admitModel) and the audit log apply to them as to models.
 *
 *   exchange.agree(own, meta)   send own statistics (or "suppressed", below the small-count rule) to every participant, resending
 *                               until acknowledged. One participant decides, the first round-0 participant by peer ID: when
 *                               every round-0 participant's statistics are in, or at the deadline (startAt + deadlineMs, the same
 *                               on every peer) with the ones present; it sends the standardiser to all, and they adopt it. One
 *                               decider means one standardiser even when a contribution arrives just at the deadline. A peer
 *                               starting after the deadline only adopts. If the decider stays silent for a second deadline, each
 *                               peer combines what it received (all hold the same statistics then, unless messages were lost).
 *   exchange.begin(own, meta)   the same exchange before the start (docs/daemon.md, start protocol): once the launcher has fixed
 *                               the round-0 participants, every one of them sends its statistics; the decider decides when all
 *                               are in (no deadline: the start waits for it at the launcher's readiness barrier) and the others
 *                               adopt. agree() after the start then returns at once; a participant that had not agreed by then
 *                               goes on with the deadline rule above. Not for privacy.secure (its keys need the published run).
 *   exchange.receive(from, msg) from the daemon's model handler, through ScenarioRun.deliver.
 *   readStandardiser(store, id) the standardiser a peer trained with (store key final/<id>/standardiser), for export and reports.
 * After agreeing, a peer's resends carry the agreed standardiser instead of its statistics, so that a late participant adopts
 * the standardiser the others trained with instead of computing a different one.
 *
 * privacy.secure (AgreeOptions.secure): no site's statistics travel in the clear. Once the scenario's key setup is complete
 * (NetSecureSession, the same pairwise keys as the masked models), each site sends every participant its statistics as one
 * pairwise-masked fixed-point vector (src/averaging/secure/secure-sum.ts, body "masked"); a site below the small-count rule sends a
 * masked zero vector of the same layout (learnt from the others' messages), so that the masks still cancel and nobody learns which
 * site it was. Any peer holding every round-0 participant's vector adds them up and gets the exact total; the decider's
 * standardiser is adopted as in the clear exchange. A round-0 participant whose vector never comes leaves masks that cannot cancel:
 * the agreement fails with STANDARDISER_NOT_AGREED naming it (no share recovery for the statistics: docs/privacy.md).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { encodeMessage, type StatsMessage } from '../averaging/message.ts';
import { agreeStandardiser, combineStats, decodeJson, encodeJson, parseAgreed, SiteStatsSchema, type AgreedStandardiser, type SiteStats, type StandardiserMeta } from '../data/standardiser-stats.ts';
import { makeHeader } from '../net/model-exchange.ts';
import type { CohortNode } from '../net/node.ts';
import type { AuditLog } from '../store/audit.ts';
import type { Store } from '../store/db.ts';
import { flatten, fromWire, layoutOf, maskStats, sumMasked, decode, toWire, unflatten, type StatsLayout } from '../averaging/secure/secure-sum.ts';
import type { PairKeys } from '../averaging/secure/masking.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';

const log = logger('peer:stats');

export interface StatsExchangeHost {
  readonly node: CohortNode;
  readonly audit: AuditLog;
  readonly scenario: string;
  /** Whose statistics make the standardiser: the participants of round 0 (late admissions adopt it). */
  contributors(): readonly string[];
  /** Everyone in the run (every one of them gets this peer's statistics, then the agreed standardiser). */
  participants(): readonly string[];
}

export interface AgreeOptions {
  readonly layoutHash: string;
  /** The run's agreed start (wall-clock ms, the same on every peer). */
  readonly startAt: number;
  /** Stop waiting for missing participants this long after the start (then agree on the contributions present). */
  readonly deadlineMs: number;
  readonly meta?: StandardiserMeta;
  /** privacy.secure: this peer's pairwise keys once the scenario's key setup is complete (NetSecureSession.pairKeys). */
  readonly secure?: () => Promise<PairKeys>;
}

/** What the exchange needs before the start (AgreeOptions without the run's clock; the clear exchange only). */
export type BeginOptions = Pick<AgreeOptions, 'layoutHash' | 'meta'>;

export class StatsExchange {
  private readonly received = new Map<string, SiteStats | null>();
  /** privacy.secure: the masked vectors received (and this peer's own), by sender; only their sum is ever decoded. */
  private readonly masked = new Map<string, { layout: StatsLayout; words: bigint[] }>();
  /** What this peer sends before the agreement: its clear statistics, or (secure) its masked vector. */
  private outgoing: { body: 'stats' | 'suppressed' | 'masked'; payload: Uint8Array } | undefined;
  private secureMode = false;
  /** Standardisers other participants sent, by sender: the decider's is adopted (a late peer takes any). */
  private readonly agreedBy = new Map<string, AgreedStandardiser>();
  private agreed: AgreedStandardiser | undefined;
  private readonly acked = new Set<string>();
  private closed = false;
  /** begin() ran: the statistics are out and, before the start, the decider decides as soon as every contributor's are in. */
  private begun: BeginOptions | undefined;
  /** Called once, when this peer has the agreed standardiser (before or after the start). */
  onAgreed: (s: AgreedStandardiser) => void = () => undefined;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: StatsExchangeHost) {}

  private get self(): string {
    return this.host.node.peerId.toString();
  }

  /** The standardiser this peer agreed (before or after the start), if any yet. */
  get current(): AgreedStandardiser | undefined {
    return this.agreed;
  }

  /**
   * Before the start: send this peer's clear statistics to every contributor and agree as soon as the decider has them all
   * (contributors() must already be the round-0 participants the launcher fixed). Idempotent; agree() continues it.
   */
  begin(own: SiteStats | null, o: BeginOptions): void {
    if (this.begun || this.closed) return;
    this.begun = o;
    this.received.set(this.self, own);
    this.outgoing = own ? { body: 'stats', payload: encodeJson(own) } : { body: 'suppressed', payload: new Uint8Array(0) };
    this.sendLoop(o.layoutHash);
    this.agreeIfComplete();
  }

  /** Before the start (begin without agree): the decider's standardiser is adopted; the decider decides when all are in. */
  private agreeIfComplete(): void {
    if (!this.begun || this.agreed || this.closed || this.secureMode) return;
    const decider = [...this.host.contributors()].sort()[0];
    if (decider === undefined) return;
    try {
      const done = this.agreedBy.get(decider) ?? (decider === this.self ? this.complete(this.begun.meta) : undefined);
      if (done) this.settle(done);
    } catch (e) {
      // e.g. every site below the small-count rule: left to agree() after the start, which reports it as the run's failure
      log.warn({ scenario: this.host.scenario.slice(0, 12), err: (e as Error).message }, 'standardiser not agreed before the start');
    }
  }

  /** A statistics message from a participant (the daemon checked the participant rule). Bad content is logged and dropped. */
  receive(from: string, msg: StatsMessage): void {
    try {
      if (msg.body === 'agreed') {
        if (!this.agreedBy.has(from)) this.agreedBy.set(from, parseAgreed(decodeJson(msg.payload)));
      } else if (msg.body === 'masked') {
        const m = fromWire(decodeJson(msg.payload));
        if (!this.masked.has(from)) this.masked.set(from, m);
        if (this.agreed) { this.acked.delete(from); this.kick(); }
      } else {
        this.received.set(from, msg.body === 'suppressed' ? null : SiteStatsSchema.parse(decodeJson(msg.payload)) as SiteStats);
        // a late participant (refused our sends before, restarted, or admitted after round 0): it gets the agreed standardiser now
        if (this.agreed) {
          this.acked.delete(from);
          this.kick();
        }
      }
      this.agreeIfComplete();
      this.wake?.();
    } catch (e) {
      log.warn({ scenario: this.host.scenario.slice(0, 12), from, err: (e as Error).message }, 'statistics message refused');
    }
  }

  /** Agree the scenario's standardiser with the other participants (see the module comment). */
  async agree(own: SiteStats | null, o: AgreeOptions): Promise<AgreedStandardiser> {
    // agreed before the start (begin): the start waited for it; the send loop goes on serving late participants
    if (this.agreed) return this.agreed;
    const begun = this.begun !== undefined;
    this.received.set(this.self, own);
    this.secureMode = Boolean(o.secure) && !begun;
    // the deadline is on the run's clock, the same for every peer; one decides (the first contributor by peer ID), the others
    // adopt its standardiser, so that a contribution arriving just at the deadline cannot split the consortium in two
    const deadline = o.startAt + o.deadlineMs;
    const late = Date.now() > deadline;
    const decider = [...this.host.contributors()].sort()[0];
    const leads = !late && decider === this.self;
    // a silent leader: after a second deadline the others decide alike from what they all received (its absence included)
    const end = leads ? deadline : Math.max(Date.now(), deadline) + o.deadlineMs;
    // secure: the masked vector; a late secure peer only adopts (its vector could not be part of the sum), so it sends no statistics
    if (begun) { /* statistics already out since begin(): the loop keeps sending them */ }
    else if (o.secure && !late) await this.prepareMasked(own, o.secure, deadline);
    else this.outgoing = own && !o.secure ? { body: 'stats', payload: encodeJson(own) } : { body: 'suppressed', payload: new Uint8Array(0) };
    if (!begun) this.sendLoop(o.layoutHash);
    while (!this.closed) {
      const done = this.agreedBy.get(decider ?? '') ?? (late ? this.agreedBy.values().next().value : undefined) ?? (leads ? this.complete(o.meta) : undefined);
      if (done) return this.settle(done);
      const left = end - Date.now();
      if (left <= 0) break;
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, Math.min(left, 250)); });
    }
    if (this.closed) throw new CohortError('CANCELLED', 'the run stopped before the standardiser was agreed');
    const missing = this.host.contributors().filter((p) => !(this.secureMode ? this.masked : this.received).has(p));
    log.warn({ scenario: this.host.scenario.slice(0, 12), missing: missing.length, leads, late }, leads
      ? 'standardiser: not every participant sent statistics by the deadline; agreeing on the ones present'
      : 'standardiser: no agreed standardiser came from the deciding participant; agreeing on the statistics present');
    return this.settle(this.combine(o.meta));
  }

  /** Every round-0 participant's statistics are in: the standardiser, identical on every peer that has the same ones. */
  private complete(meta: StandardiserMeta | undefined): AgreedStandardiser | undefined {
    return this.host.contributors().every((p) => (this.secureMode ? this.masked : this.received).has(p)) ? this.combine(meta) : undefined;
  }

  /**
   * Secure: wait for the key setup, then mask this site's statistics for the sum over every round-0 participant. A suppressed site
   * takes the layout from the first masked vector it receives (before the deadline; else it has nothing to mask).
   */
  private async prepareMasked(own: SiteStats | null, keysOf: () => Promise<PairKeys>, deadline: number): Promise<void> {
    const keys = await keysOf();
    let layout = own ? layoutOf(own) : undefined;
    while (!layout && !this.closed && Date.now() < deadline) {
      layout = this.masked.values().next().value?.layout;
      if (!layout) await new Promise<void>((r) => { this.wake = r; setTimeout(r, 250); });
    }
    if (!layout) {
      throw new CohortError('STANDARDISER_NOT_AGREED', 'secure statistics: this site is below the small-count rule and no other site\'s masked statistics came by the deadline',
        'every round-0 participant must be up before round 0 (raise launch.startDelayMs)');
    }
    const senders = [...this.host.contributors()].sort();
    const { words, clipped } = maskStats(this.self, keys, senders, this.host.scenario, 0, flatten(own, layout));
    if (clipped) log.warn({ scenario: this.host.scenario.slice(0, 12), clipped }, 'secure statistics: values beyond the fixed-point range were clipped');
    this.masked.set(this.self, { layout, words });
    this.outgoing = { body: 'masked', payload: encodeJson(toWire(layout, 0, words)) };
    log.info({ scenario: this.host.scenario.slice(0, 12), senders: senders.length, values: words.length, contributes: Boolean(own) }, 'statistics masked for the secure sum');
  }

  /** Secure: the masks cancel only when every round-0 participant's vector is in; their sum, decoded, is the total. */
  private combineMasked(meta: StandardiserMeta | undefined): AgreedStandardiser {
    const senders = [...this.host.contributors()].sort();
    const missing = senders.filter((p) => !this.masked.has(p));
    if (missing.length) {
      throw new CohortError('STANDARDISER_NOT_AGREED', `secure statistics: no masked statistics from ${missing.join(', ')}; without them the others' masks cannot cancel`,
        'every round-0 participant must be up and reachable before round 0 (raise launch.startDelayMs); a dropped site\'s masks are not rebuilt for the statistics');
    }
    const vectors = senders.map((p) => this.masked.get(p)!);
    const layout = vectors[0]!.layout;
    if (vectors.some((v) => JSON.stringify(v.layout) !== JSON.stringify(layout))) {
      throw new CohortError('STATISTICS_SHAPE', 'secure statistics: sites disagree on the inputs or classes', 'every site must read the same columns (and the manifest\'s class list)');
    }
    const total = unflatten(decode(sumMasked(vectors.map((v) => v.words))), layout);
    log.info({ scenario: this.host.scenario.slice(0, 12), senders: senders.length, sites: total.sites, rows: total.rows }, 'secure sum of the statistics decoded');
    if (total.sites < 1) {
      throw new CohortError('STANDARDISER_NOT_AGREED', 'no participant contributed statistics for the consortium standardiser (all below the small-count rule)',
        'use data.preprocessing.standardize "site" or false, or more training rows per site');
    }
    return agreeStandardiser(total, { ...meta, mode: 'consortium' });
  }

  private combine(meta: StandardiserMeta | undefined): AgreedStandardiser {
    if (this.secureMode) return this.combineMasked(meta);
    const ids = this.host.contributors().filter((p) => this.received.get(p)).sort();
    if (!ids.length) {
      throw new CohortError('STANDARDISER_NOT_AGREED', 'no participant contributed statistics for the consortium standardiser (all below the small-count rule, or none answered)',
        'use data.preprocessing.standardize "site" or false, or more training rows per site');
    }
    return agreeStandardiser(combineStats(ids.map((p) => this.received.get(p)!)), { ...meta, mode: 'consortium' });
  }

  private settle(s: AgreedStandardiser): AgreedStandardiser {
    if (this.agreed) return this.agreed;
    this.agreed = s;
    // from now on every participant gets the standardiser itself (once, acknowledged), including those that had our statistics
    this.acked.clear();
    this.kick();
    log.info({ scenario: this.host.scenario.slice(0, 12), hash: s.hash.slice(0, 12), sites: s.sites, rows: s.rows }, 'standardiser agreed');
    this.onAgreed(s);
    return s;
  }

  /** Resend to every participant that has not acknowledged yet, backing off from 0.5 s to 8 s, until all have or the run stops. */
  private sendLoop(layoutHash: string, delay = 500): void {
    if (this.closed) return;
    const pending = this.host.participants().filter((p) => p !== this.self && !this.acked.has(p));
    void Promise.all(pending.map((to) => this.sendTo(to, layoutHash))).then(() => {
      if (this.closed || this.host.participants().every((p) => p === this.self || this.acked.has(p))) return;
      this.timer = setTimeout(() => this.sendLoop(layoutHash, Math.min(8000, delay * 2)), delay);
    });
    this.kick = () => { clearTimeout(this.timer); this.timer = setTimeout(() => this.sendLoop(layoutHash), 0); };
  }

  private kick: () => void = () => undefined;

  private async sendTo(to: string, layoutHash: string): Promise<void> {
    const agreed = this.agreed;
    const out = this.outgoing ?? { body: 'suppressed', payload: new Uint8Array(0) };
    const body: StatsMessage['body'] = agreed ? 'agreed' : out.body;
    const payload = agreed ? encodeJson(agreed) : out.payload;
    const msg: StatsMessage = { kind: 'stats', scenario: this.host.scenario, round: 0, layoutHash, body, payload };
    const bytes = encodeMessage(msg);
    const header = makeHeader({ scenarioId: this.host.scenario, round: 0, sender: this.self, layoutHash, dtype: 'bytes', compression: 'none' }, bytes);
    const what = body === 'agreed' ? 'agreed standardiser (aggregate statistics)' : body === 'stats' ? 'preprocessing statistics (counts, sums, sums of squares)'
      : body === 'masked' ? 'preprocessing statistics, pairwise-masked (secure sum)' : 'preprocessing statistics suppressed (small count)';
    try {
      await this.host.audit.transfer({ kind: 'model-sent', scenario: this.host.scenario, round: 0, peer: to, what, bytes: bytes.byteLength, sha256: header.sha256 });
      const ack = await this.host.node.models.send(peerIdFromString(to), header, bytes);
      // an acknowledgement counts only for what is current: statistics acknowledged after the agreement (sent before it, answered
      // after settle cleared the list) would otherwise mark that peer done and it would never get the standardiser (seen: 1 of 2
      // non-deciders fell back to its own combination after the second deadline)
      if (ack.ok && this.agreed === agreed) this.acked.add(to);
    } catch (e) {
      log.debug({ to, err: (e as Error).message }, 'statistics not delivered; will resend');
    }
  }

  /** A standardiser kept from an earlier start of the run: give it to participants that ask (late ones), agree nothing anew. */
  serve(s: AgreedStandardiser, layoutHash: string): void {
    this.agreed = s;
    this.sendLoop(layoutHash);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.wake?.();
  }
}

// ---------------------------------------------------------------- where the agreed standardiser is kept

/** Store key (checkpoints sublevel), next to final/<id>/params: written when agreed, so a restart reuses it and export finds it. */
export const standardiserKey = (scenario: string): string => `final/${scenario}/standardiser`;

export async function saveStandardiser(store: Store, scenario: string, s: AgreedStandardiser): Promise<void> {
  await store.checkpoints.put(standardiserKey(scenario), encodeJson(s));
}

/** The standardiser this peer trained the scenario with (consortium or site), checked against its hash; undefined if none. */
export async function readStandardiser(store: Store, scenario: string): Promise<AgreedStandardiser | undefined> {
  const bytes = await store.checkpoints.get(standardiserKey(scenario));
  return bytes ? parseAgreed(decodeJson(bytes)) : undefined;
}
