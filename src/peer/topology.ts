/**
 * The network as one peer can know it, for the dashboard: who is connected to whom and what each edge carried.
 *   liveLinks(node, self) / ownLinks(...)       this peer's live links to roster members, with the net counters' bytes per edge
 *                                              (sent in every heartbeat as `links`, schema in src/net/pubsub.ts)
 *   networkEdges(...)                          the union of its own links ('self') and those other members announced ('heard'),
 *                                              one edge per pair of roster members, stale or non-member reports left out
 *   TransferLedger                             model bytes sent to / received from each peer since the audit log began, read
 *                                              incrementally from the log's model transfers (src/store/audit.ts transfers())
 * Why both sources: the net counters (src/net/metrics.ts) see every byte on the wire but start at zero with the process and count
 * gossip sends as broadcasts ('*'); the audit log keeps every model transfer per peer across restarts.
 */
import { MAX_HEARTBEAT_LINKS } from '../net/pubsub.ts';
import type { Traffic } from '../net/metrics.ts';
import type { CohortNode } from '../net/node.ts';
import { transfers, type AuditEntry } from '../store/audit.ts';

export interface Link { readonly peer: string; readonly bytesOut: number; readonly bytesIn: number }

/** This peer's live links to roster members (never to itself, never to a non-member), at most MAX_HEARTBEAT_LINKS. */
export function ownLinks(connected: Iterable<string>, members: ReadonlySet<string>, byPeer: Readonly<Record<string, Traffic>>, self: string): Link[] {
  const out: Link[] = [];
  for (const peer of new Set(connected)) {
    if (peer === self || !members.has(peer)) continue;
    out.push({ peer, bytesOut: byPeer[peer]?.bytesOut ?? 0, bytesIn: byPeer[peer]?.bytesIn ?? 0 });
    if (out.length === MAX_HEARTBEAT_LINKS) break;
  }
  return out;
}

/** The node's live links to roster members now (what the heartbeat carries and the dashboard draws as this peer's own). */
export function liveLinks(node: CohortNode, self: string): Link[] {
  const members = new Set(node.roster.current.members.map((m) => m.peerId));
  return ownLinks(node.libp2p.getConnections().map((c) => c.remotePeer.toString()), members, node.metrics().byPeer, self);
}

/** What a member last announced (the coordinator's heartbeat map entry). */
export interface HeardLinks { readonly at: number; readonly links?: readonly Partial<Link>[] }

export interface Edge {
  /** The two ends; `from` is this peer for its own links, else a member that reported the edge. */
  readonly from: string;
  readonly to: string;
  /** 'self': a live connection of this peer; 'heard': announced by another member in its heartbeat. */
  readonly seen: 'self' | 'heard';
  /** Members whose report names the edge (this peer included for its own). */
  readonly reportedBy: string[];
  /** Bytes from -> to and to -> from, as the reporting ends counted them since they started (the larger when both report). */
  bytesOut: number;
  bytesIn: number;
}

/**
 * One edge per pair of roster members: this peer's own links first, then every fresh heartbeat's links between members.
 * A heartbeat older than `maxAgeMs` is left out (its sender may be gone; its links with it).
 */
export function networkEdges(self: string, own: readonly Link[], heard: ReadonlyMap<string, HeardLinks>, members: ReadonlySet<string>, now: number, maxAgeMs: number): Edge[] {
  const edges = new Map<string, Edge>();
  const key = (a: string, b: string): string => (a < b ? `${a} ${b}` : `${b} ${a}`);
  const add = (reporter: string, l: Link, seen: Edge['seen']): void => {
    if (l.peer === reporter || !members.has(l.peer) || !members.has(reporter)) return;
    const k = key(reporter, l.peer);
    let e = edges.get(k);
    if (!e) edges.set(k, (e = { from: reporter, to: l.peer, seen, reportedBy: [], bytesOut: 0, bytesIn: 0 }));
    if (!e.reportedBy.includes(reporter)) e.reportedBy.push(reporter);
    const forward = e.from === reporter;   // the reporter's "out" is this edge's from -> to when it is the edge's `from`
    e.bytesOut = Math.max(e.bytesOut, forward ? l.bytesOut : l.bytesIn);
    e.bytesIn = Math.max(e.bytesIn, forward ? l.bytesIn : l.bytesOut);
  };
  for (const l of own) add(self, l, 'self');
  for (const [reporter, hb] of heard) {
    if (reporter === self || now - hb.at > maxAgeMs) continue;
    for (const l of (hb.links ?? []).slice(0, MAX_HEARTBEAT_LINKS)) {
      if (typeof l.peer === 'string') add(reporter, { peer: l.peer, bytesOut: l.bytesOut ?? 0, bytesIn: l.bytesIn ?? 0 }, 'heard');
    }
  }
  return [...edges.values()];
}

export interface PeerTransfers { modelBytesSent: number; modelBytesReceived: number; modelsSent: number; modelsReceived: number }

/**
 * Model bytes per peer from the audit log, read incrementally (only entries after the last one read): the dashboard asks every
 * poll, so reading the whole log each time would grow with the log. Open round tallies join once their round's entry is written.
 */
export class TransferLedger {
  private readonly perPeer = new Map<string, PeerTransfers>();
  private nextSeq = 0;
  private reading: Promise<void> | undefined;

  constructor(private readonly entries: (since: number) => AsyncIterable<AuditEntry>) {}

  /** The totals per peer, after reading what was appended since the last call (one read at a time). */
  async totals(): Promise<ReadonlyMap<string, PeerTransfers>> {
    this.reading ??= this.catchUp().finally(() => { this.reading = undefined; });
    await this.reading;
    return this.perPeer;
  }

  private async catchUp(): Promise<void> {
    for await (const e of this.entries(this.nextSeq)) {
      this.nextSeq = Math.max(this.nextSeq, e.seq + 1);
      for (const t of transfers([e])) {
        let p = this.perPeer.get(t.peer);
        if (!p) this.perPeer.set(t.peer, (p = { modelBytesSent: 0, modelBytesReceived: 0, modelsSent: 0, modelsReceived: 0 }));
        if (t.kind === 'model-sent') { p.modelBytesSent += t.bytes ?? 0; p.modelsSent++; }
        else { p.modelBytesReceived += t.bytes ?? 0; p.modelsReceived++; }
      }
    }
  }
}
