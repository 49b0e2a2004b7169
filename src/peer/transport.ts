/**
 * AveragingTransport over the real network for one scenario: averaging messages travel as /cohort/model/1 transfers to the
 * scenario's participants; the round clock is wall time since the run's agreed start. Every send is written to the audit log
 * (to whom, what, size, sha256) before it leaves. Handlers run one at a time, in arrival order (the averaging rules rely on it).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { encodeMessage } from '../averaging/message.ts';
import type { AveragingMessage, AveragingTransport, MaybePromise } from '../averaging/types.ts';
import type { CohortNode } from '../net/node.ts';
import { makeHeader } from '../net/model-exchange.ts';
import type { AuditLog } from '../store/audit.ts';
import { logger } from '../util/log.ts';

const log = logger('peer:transport');

export class PeerTransport implements AveragingTransport {
  readonly self: string;
  bytesSent = 0;
  private handler: ((from: string, msg: AveragingMessage) => MaybePromise) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextTimer = 1;
  private closed = false;

  constructor(
    private readonly node: CohortNode,
    private readonly audit: AuditLog,
    private readonly scenario: string,
    private readonly participants: readonly string[],
    private readonly startAt: number,
  ) {
    this.self = node.peerId.toString();
  }

  neighbours(): readonly string[] {
    const connected = new Set(this.node.libp2p.getConnections().map((c) => c.remotePeer.toString()));
    return this.participants.filter((p) => p !== this.self && connected.has(p));
  }

  peers(): readonly string[] {
    return this.neighbours();
  }

  send(to: string, msg: AveragingMessage): void {
    if (this.closed) return;
    const bytes = encodeMessage(msg);
    const header = makeHeader({ scenarioId: this.scenario, round: Math.max(0, msg.round), sender: this.self, layoutHash: msg.layoutHash, dtype: 'bytes', compression: msg.kind === 'model' ? msg.codec : 'none' }, bytes);
    this.bytesSent += bytes.byteLength;
    const what = msg.kind === 'model' ? `round ${msg.round} model (${msg.codec}${msg.purpose === 'pull-reply' ? ', pull reply' : ''})` : `round ${msg.round} ${msg.kind}`;
    void this.audit.append({ kind: 'model-sent', to, what, scenario: this.scenario, bytes: bytes.byteLength, sha256: header.sha256 })
      .then(() => this.node.models.send(peerIdFromString(to), header, bytes))
      .then((ack) => { if (!ack.ok) log.debug({ to, reason: ack.reason }, 'model refused'); })
      .catch((e: unknown) => log.debug({ to, err: (e as Error).message }, 'model send failed'));
  }

  onMessage(handler: (from: string, msg: AveragingMessage) => MaybePromise): void {
    this.handler = handler;
  }

  /** From the daemon's /cohort/model/1 handler. */
  deliver(from: string, msg: AveragingMessage): void {
    const h = this.handler;
    if (!h || this.closed) return;
    this.queue = this.queue.then(() => h(from, msg)).catch((e: unknown) => log.warn({ err: e }, 'averaging handler failed'));
  }

  now(): number {
    return Date.now() - this.startAt;
  }

  setTimer(ms: number, cb: () => MaybePromise): number {
    const id = this.nextTimer++;
    this.timers.set(id, setTimeout(() => {
      this.timers.delete(id);
      if (this.closed) return;
      this.queue = this.queue.then(() => cb()).catch((e: unknown) => log.warn({ err: e }, 'averaging timer failed'));
    }, Math.max(0, ms)));
    return id;
  }

  clearTimer(id: number): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  computeDelay(): number {
    return 0;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
