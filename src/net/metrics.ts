/**
 * Network counters for the daemon's status: bytes and messages in/out per peer and protocol (or gossip topic kind),
 * rejections by reason, connections. API: NetMetrics.{countIn, countOut, reject, snapshot}; NetMetricsSnapshot.
 */
export interface Traffic {
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
}

export interface NetMetricsSnapshot {
  readonly connections: number;
  readonly connectionsOpened: number;
  readonly connectionsDenied: number;
  /** key: protocol id or `gossip:<kind>` */
  readonly byProtocol: Record<string, Traffic>;
  /** key: peer ID */
  readonly byPeer: Record<string, Traffic>;
  /** key: `<where>:<reason>`, e.g. `model:hash-mismatch`, `gossip:schema` */
  readonly rejections: Record<string, number>;
}

const zero = (): Traffic => ({ bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 });

export class NetMetrics {
  private readonly protocols = new Map<string, Traffic>();
  private readonly peers = new Map<string, Traffic>();
  private readonly rejected = new Map<string, number>();
  connectionsOpened = 0;
  connectionsDenied = 0;
  /** Filled by the node (live count from libp2p). */
  connectionCount: () => number = () => 0;

  private slot(map: Map<string, Traffic>, key: string): Traffic {
    let t = map.get(key);
    if (!t) map.set(key, (t = zero()));
    return t;
  }

  countIn(peer: string, protocol: string, bytes: number, messages = 1): void {
    for (const t of [this.slot(this.peers, peer), this.slot(this.protocols, protocol)]) {
      t.bytesIn += bytes;
      t.messagesIn += messages;
    }
  }

  countOut(peer: string, protocol: string, bytes: number, messages = 1): void {
    for (const t of [this.slot(this.peers, peer), this.slot(this.protocols, protocol)]) {
      t.bytesOut += bytes;
      t.messagesOut += messages;
    }
  }

  reject(where: string, reason: string): void {
    const key = `${where}:${reason}`;
    this.rejected.set(key, (this.rejected.get(key) ?? 0) + 1);
  }

  rejections(key: string): number {
    return this.rejected.get(key) ?? 0;
  }

  snapshot(): NetMetricsSnapshot {
    const copy = (m: Map<string, Traffic>): Record<string, Traffic> => Object.fromEntries([...m].map(([k, v]) => [k, { ...v }]));
    return {
      connections: this.connectionCount(),
      connectionsOpened: this.connectionsOpened,
      connectionsDenied: this.connectionsDenied,
      byProtocol: copy(this.protocols),
      byPeer: copy(this.peers),
      rejections: Object.fromEntries(this.rejected),
    };
  }
}
