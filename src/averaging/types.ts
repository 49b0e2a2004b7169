/**
 * The one small interface between the averaging algorithms and the world, and the messages they exchange.
 *
 * API (read this first):
 *   AveragingTransport — implemented by src/sim (virtual clock, simulated links) and src/net/averaging-transport.ts (libp2p):
 *     self, neighbours() (current out-neighbours), peers() (peer sampling: every live peer known from the roster/peerstore),
 *     send(to, msg), onMessage(handler), now(), setTimer(ms, cb) / clearTimer(id), computeDelay(steps).
 *     Handlers and timer callbacks may return a Promise; a transport runs them one at a time per peer, in order.
 *   LocalLearner — the local model as a flat Float32Array with its weight (sample count), and local training.
 *   AveragingMessage — what travels: scenario, round, layout hash, encoded model bytes (see compression.ts and message.ts).
 */

/** A peer's identity as the transport names it (a libp2p peer ID string, or "p7" in the simulator). */
export type PeerId = string;

export type MaybePromise = void | Promise<void>;

export interface AveragingTransport {
  readonly self: PeerId;
  /** Current out-neighbours on the topology (online ones only). May change between calls (time-varying graphs, churn). */
  neighbours(): readonly PeerId[];
  /** Every live peer this peer knows of (peer sampling for Epidemic Learning and gossip learning), excluding itself. */
  peers(): readonly PeerId[];
  /** Fire and forget: the message may be delayed, lost, or reach a peer that has left. */
  send(to: PeerId, msg: AveragingMessage): void;
  onMessage(handler: (from: PeerId, msg: AveragingMessage) => MaybePromise): void;
  /** Milliseconds (virtual in the simulator, wall clock over libp2p). */
  now(): number;
  setTimer(ms: number, cb: () => MaybePromise): number;
  clearTimer(id: number): void;
  /** How long `steps` local training steps take on this peer, for timing: the simulator's compute model; 0 in real time. */
  computeDelay(steps: number): number;
}

/** Local training between exchanges (the engine's Trainer behind an adapter, or a small closed-form learner in tests). */
export interface LocalLearner {
  /** Number of local training samples: the weight of this peer in sample-weighted averages. */
  readonly sampleCount: number;
  getParameters(): Float32Array;
  setParameters(v: Float32Array): void;
  /** Run the configured local steps (or epochs); returns how many optimiser steps ran. */
  train(): Promise<{ loss: number; steps: number }>;
  /** FedProx: the proximal anchor (round-start model), or null to switch it off. */
  setProximalAnchor?(v: Float32Array | null): void;
}

/** The common header of every averaging message. */
export interface MessageHeader {
  readonly scenario: string;
  readonly round: number;
  readonly layoutHash: string;
}

/** A model (or a compressed difference, for CHOCO) with the metadata its rule needs. */
export interface ModelMessage extends MessageHeader {
  readonly kind: 'model';
  /** Codec name (compression.ts) and the encoded values. */
  readonly codec: string;
  readonly payload: Uint8Array;
  /** Push-sum weight share, gossip-learning age, or sample count (EL / FedAvg weights). */
  readonly weight?: number;
  /** D-PSGD: the sender's degree and participant set this round (so both ends agree on W_ij). */
  readonly degree?: number;
  readonly participants?: readonly PeerId[];
  /** Push-sum: share id, kept by the sender until acknowledged. */
  readonly shareId?: string;
  /** Why it was sent: a regular exchange, or the reply to a joining peer's pull. */
  readonly purpose?: 'exchange' | 'pull-reply';
  /** Pull replies: the nonce of the pull they answer (a reply nobody asked for is refused). */
  readonly nonce?: string;
}

export interface AckMessage extends MessageHeader {
  readonly kind: 'ack';
  readonly shareId: string;
}

/** A joining (or returning) peer asks a neighbour for its current model. */
export interface PullMessage extends MessageHeader {
  readonly kind: 'pull';
  /** Fresh per pull: the reply must carry it back, from the peer that was asked, once. */
  readonly nonce: string;
}

export type AveragingMessage = ModelMessage | AckMessage | PullMessage;

/** Why a message was refused; counted per node, never averaged in. */
export type RejectReason = 'wrong-scenario' | 'wrong-layout' | 'unknown-round' | 'non-finite' | 'stale' | 'malformed' | 'duplicate' | 'unsolicited';

export interface NodeStats {
  messagesSent: number;
  bytesSent: number;
  messagesReceived: number;
  bytesReceived: number;
  rejected: Record<RejectReason, number>;
  /** Rounds (or timer periods) completed. */
  rounds: number;
  /** Messages a round-based node gave up waiting for at its deadline. */
  missedAtDeadline: number;
  /** Rounds skipped because this peer's timer fired more than a round late (real networks on a stalled machine). */
  skippedRounds: number;
  /** D-PSGD / CHOCO: models that missed a deadline and were applied afterwards as a correction (counted when applied, once each). */
  lateApplied: number;
  /** D-PSGD / CHOCO: local updates that finished after their round's deadline and were applied then (once each). */
  lateLocalUpdates: number;
}

export function emptyStats(): NodeStats {
  return {
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    rejected: { 'wrong-scenario': 0, 'wrong-layout': 0, 'unknown-round': 0, 'non-finite': 0, stale: 0, malformed: 0, duplicate: 0, unsolicited: 0 },
    rounds: 0,
    missedAtDeadline: 0,
    skippedRounds: 0,
    lateApplied: 0,
    lateLocalUpdates: 0,
  };
}
