/**
 * Typed gossip over gossipsub (StrictSign): versioned JSON envelopes validated with zod inside gossipsub's topic validator, so an
 * invalid message is rejected (counted, never delivered nor forwarded). Only roster members may originate messages.
 *
 * Topics (consortium C, scenario S):  /cohort/C/roster/1 · /cohort/C/announce/1 · /cohort/C/heartbeat/1 · /cohort/C/catalogue/1
 *                                      /cohort/C/scenario/S/1 (approvals, progress, metrics of one scenario)
 * Envelope: { v: 1, type, body, sentAt }. Types live in a registry: registerGossipType(type, bodySchema) — the daemon adds its own
 * (declare them in `interface GossipTypes` by module augmentation to get typed publish/subscribe).
 * API: topics(consortium), scenarioTopic(consortium, id), CohortPubsub.{publish(topic, msg, opts), subscribe(topic, handler), unsubscribe}.
 */
import { z } from 'zod';
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import type { NetMetrics } from './metrics.ts';
import { RosterDocSchema, type Roster, type RosterDoc } from './roster.ts';

const log = logger('net:pubsub');

export const GOSSIP_VERSION = 1;

const Id = z.string().min(1).max(200);
/** Bodies are open (passthrough): newer peers may add fields that older ones carry along. */
export const AnnounceBody = z.object({ scenarioId: Id, state: z.string(), manifest: z.unknown().optional() }).passthrough();
export const ApprovalBody = z.object({ scenarioId: Id, site: z.string(), decision: z.enum(['approve', 'reject']), reason: z.string().optional() }).passthrough();
/** Most links one heartbeat may list (a peer's live connections to roster members; bounds the message and what is kept of it). */
export const MAX_HEARTBEAT_LINKS = 512;
/** One live connection of the heartbeat's sender to a roster member, with the bytes its net counters saw since it started. */
export const HeartbeatLink = z.object({ peer: Id, bytesOut: z.number().int().nonnegative().optional(), bytesIn: z.number().int().nonnegative().optional() }).strict();
export const HeartbeatBody = z.object({ name: z.string(), load: z.number().optional(), device: z.string().optional(), scenarios: z.array(Id).optional(),
  links: z.array(HeartbeatLink).max(MAX_HEARTBEAT_LINKS).optional() }).passthrough();
export const ProgressBody = z.object({ scenarioId: Id, round: z.number().int().nonnegative(), loss: z.number().optional() }).passthrough();
export const MetricsBody = z.object({ scenarioId: Id, round: z.number().int().nonnegative(), metrics: z.record(z.string(), z.number()) }).passthrough();
export const CatalogueBody = z.object({ datasetId: Id, kind: z.string(), summary: z.record(z.string(), z.unknown()).optional() }).passthrough();

/** Type name -> body type. Extend by module augmentation (`declare module '../net/pubsub.ts' { interface GossipTypes {...} }`). */
export interface GossipTypes {
  roster: RosterDoc;
  announce: z.infer<typeof AnnounceBody>;
  approval: z.infer<typeof ApprovalBody>;
  heartbeat: z.infer<typeof HeartbeatBody>;
  progress: z.infer<typeof ProgressBody>;
  metrics: z.infer<typeof MetricsBody>;
  catalogue: z.infer<typeof CatalogueBody>;
}
export type GossipType = keyof GossipTypes & string;
export type GossipMessage<T extends GossipType = GossipType> = { readonly type: T; readonly body: GossipTypes[T] };
export interface ReceivedGossip<T extends GossipType = GossipType> extends GossipMessage<T> {
  readonly from: PeerId;
  readonly topic: string;
  readonly sentAt: number;
}

const registry = new Map<string, z.ZodType>([
  ['roster', RosterDocSchema], ['announce', AnnounceBody], ['approval', ApprovalBody], ['heartbeat', HeartbeatBody],
  ['progress', ProgressBody], ['metrics', MetricsBody], ['catalogue', CatalogueBody],
]);

/** Register (or replace) the body schema of a message type. Every peer must register the same types. */
export function registerGossipType(type: string, schema: z.ZodType): void {
  registry.set(type, schema);
}

const Envelope = z.object({ v: z.literal(GOSSIP_VERSION), type: z.string(), body: z.unknown(), sentAt: z.number() }).strict();

export function topics(consortium: string) {
  const base = `/cohort/${consortium}`;
  return {
    roster: `${base}/roster/1`,
    announce: `${base}/announce/1`,
    heartbeat: `${base}/heartbeat/1`,
    catalogue: `${base}/catalogue/1`,
  } as const;
}
export function scenarioTopic(consortium: string, scenarioId: string): string {
  return `/cohort/${consortium}/scenario/${scenarioId}/1`;
}

/** Decode and validate one message; returns the reason on failure (used by the topic validator). */
export function decodeGossip(data: Uint8Array): { ok: true; msg: { type: string; body: unknown; sentAt: number } } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { ok: false, reason: 'not-json' };
  }
  const env = Envelope.safeParse(json);
  if (!env.success) return { ok: false, reason: 'envelope' };
  const schema = registry.get(env.data.type);
  if (!schema) return { ok: false, reason: 'unknown-type' };
  const body = schema.safeParse(env.data.body);
  if (!body.success) return { ok: false, reason: 'schema' };
  return { ok: true, msg: { type: env.data.type, body: body.data, sentAt: env.data.sentAt } };
}

export type GossipHandler = (msg: ReceivedGossip) => void | Promise<void>;
/** Extra check per message type after the schema (e.g. roster signatures): Accept, Ignore (not newer) or Reject (forged). */
export type GossipGuard = (msg: ReceivedGossip) => TopicValidatorResult | Promise<TopicValidatorResult>;

export interface PublishOptions {
  /** Throw if no peer received it (default false: the caller decides). */
  readonly requireRecipients?: boolean;
}

export class CohortPubsub {
  private readonly handlers = new Map<string, Set<GossipHandler>>();
  private readonly guards = new Map<string, GossipGuard>();

  constructor(
    private readonly gossip: GossipSub,
    private readonly roster: () => Roster,
    private readonly opts: { readonly maxGossipBytes: number; readonly metrics?: NetMetrics },
  ) {
    gossip.addEventListener('message', (evt) => this.deliver(evt.detail));
  }

  /** A type-specific check run inside the validator (the node installs one for rosters). */
  guard(type: string, guard: GossipGuard): void {
    this.guards.set(type, guard);
  }

  async publish<T extends GossipType>(topic: string, msg: GossipMessage<T>, opts: PublishOptions = {}): Promise<{ recipients: number }> {
    const schema = registry.get(msg.type);
    if (!schema) throw new CohortError('GOSSIP_UNKNOWN_TYPE', `no gossip type "${msg.type}"`, 'register it with registerGossipType(type, schema) on every peer');
    const body = schema.safeParse(msg.body);
    if (!body.success) throw new CohortError('GOSSIP_INVALID', `gossip ${msg.type} body is invalid: ${body.error.issues[0]?.message ?? ''}`, 'peers would reject it; fix the message');
    const data = new TextEncoder().encode(JSON.stringify({ v: GOSSIP_VERSION, type: msg.type, body: msg.body, sentAt: Date.now() }));
    if (data.byteLength > this.opts.maxGossipBytes) {
      throw new CohortError('GOSSIP_TOO_LARGE', `gossip ${msg.type} is ${data.byteLength} bytes, over the ${this.opts.maxGossipBytes}-byte limit`, 'send large payloads (models) over /cohort/model/1 with ModelExchange.send');
    }
    this.ensureValidator(topic);
    const res = await this.gossip.publish(topic, data);
    this.opts.metrics?.countOut('*', `gossip:${msg.type}`, data.byteLength);
    if (opts.requireRecipients && res.recipients.length === 0) {
      throw new CohortError('GOSSIP_NO_RECIPIENTS', `gossip ${msg.type} on ${topic} reached no peer`, 'no connected member subscribes to this topic yet; retry after peers connect');
    }
    return { recipients: res.recipients.length };
  }

  subscribe(topic: string, handler: GossipHandler): () => void {
    this.ensureValidator(topic);
    let set = this.handlers.get(topic);
    if (!set) {
      this.handlers.set(topic, (set = new Set()));
      this.gossip.subscribe(topic);
    }
    set.add(handler);
    return () => this.unsubscribe(topic, handler);
  }

  unsubscribe(topic: string, handler: GossipHandler): void {
    const set = this.handlers.get(topic);
    if (!set) return;
    set.delete(handler);
    if (set.size === 0) {
      this.handlers.delete(topic);
      this.gossip.unsubscribe(topic);
    }
  }

  private ensureValidator(topic: string): void {
    if (this.gossip.topicValidators.has(topic)) return;
    this.gossip.topicValidators.set(topic, (peer, message) => this.validate(peer, message));
  }

  private async validate(propagator: PeerId, message: Message): Promise<TopicValidatorResult> {
    const rejectWith = (reason: string): TopicValidatorResult => {
      this.opts.metrics?.reject('gossip', reason);
      log.debug({ from: propagator.toString(), topic: message.topic, reason }, 'gossip rejected');
      return TopicValidatorResult.Reject;
    };
    if (message.type !== 'signed') return rejectWith('unsigned');
    if (!this.roster().has(message.from)) return rejectWith('not-member');
    const decoded = decodeGossip(message.data);
    if (!decoded.ok) return rejectWith(decoded.reason);
    this.opts.metrics?.countIn(propagator.toString(), `gossip:${decoded.msg.type}`, message.data.byteLength);
    const guard = this.guards.get(decoded.msg.type);
    if (!guard) return TopicValidatorResult.Accept;
    const verdict = await guard({ ...(decoded.msg as GossipMessage), from: message.from, topic: message.topic, sentAt: decoded.msg.sentAt });
    if (verdict === TopicValidatorResult.Reject) this.opts.metrics?.reject('gossip', `guard-${decoded.msg.type}`);
    return verdict;
  }

  private deliver(message: Message): void {
    const set = this.handlers.get(message.topic);
    if (!set || message.type !== 'signed') return;
    const decoded = decodeGossip(message.data); // validated already; decoding again keeps the validator free of state
    if (!decoded.ok) return;
    const msg: ReceivedGossip = { ...(decoded.msg as GossipMessage), from: message.from, topic: message.topic, sentAt: decoded.msg.sentAt };
    for (const h of set) {
      Promise.resolve()
        .then(() => h(msg))
        .catch((e: unknown) => log.warn({ err: (e as Error).message, topic: message.topic }, 'gossip handler failed'));
    }
  }
}
