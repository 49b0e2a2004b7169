/**
 * Four secure D-PSGD peers over real libp2p on loopback, for the rejoin tests (test/unit/secure-rejoin*.test.ts): each with the
 * daemon's PeerTransport (audited sends, real LevelDB audit log), a NetSecureSession (round-0 key setup over the wire), a
 * RekeyResponder and the secure node, wired as src/peer/runner.ts wires them; `kill` and `restart` do to one peer what a
 * `kill -9` and a daemon restart on the same identity do (a new transport, RejoinSession, responder and node), `cut` partitions
 * two live peers. Every node's
 * round-start models and decoded sums are recorded, so `relErr` compares each sum with the plain weighted sum of its senders.
 */
import { decodeWire } from '../../src/averaging/message.ts';
import type { AveragingTransport, ModelMessage } from '../../src/averaging/types.ts';
import { createNode } from '../../src/averaging/factory.ts';
import { NetSecureSession } from '../../src/averaging/secure/net-session.ts';
import type { SecureDpsgdNode } from '../../src/averaging/secure/node.ts';
import { RejoinSession, RekeyResponder, roundZeroKey } from '../../src/averaging/secure/rejoin.ts';
import { rejoinAfterBurn } from '../../src/averaging/secure/burn.ts';
import { PeerTransport } from '../../src/peer/transport.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';
import type { LocalPeerGroup } from './local-peers.ts';

export interface RejoinRun {
  t: PeerTransport; session: NetSecureSession | RejoinSession; responder: RekeyResponder; node: SecureDpsgdNode;
  /** The transport under the responder: `t`, or `t` with the test's send faults (SecureGroupOptions.wire). */
  wire: AveragingTransport;
}
export interface RecordedSum { receiver: string; round: number; sum: Float64Array; senders: string[] }

export interface SecureGroupOptions {
  readonly scenario: string;
  readonly seed: number;
  readonly rounds: number;
  readonly roundMs: number;
  /** Model length (530: the WDBC MLP's size). */
  readonly length: number;
  /** Faults on a peer's sends (test/helpers/secure-faults.ts withSend): wraps its wire transport, under the session and responder. */
  readonly wire?: (i: number, t: AveragingTransport) => AveragingTransport;
}

export async function secureGroup(localPeers: (n: number, seed: number) => Promise<LocalPeerGroup>, o: SecureGroupOptions) {
  const { scenario, rounds, roundMs, length } = o;
  const { peers: group, ids } = await localPeers(4, o.seed);
  const startAt = Date.now() + 6000;
  const rng = new Rng(o.seed);
  const snaps = new Map<string, Float32Array>();
  const sums: RecordedSum[] = [];
  const refused: string[] = [];
  const decided = new Map<number, { from: number; why: string }>();
  const down = [false, false, false, false];
  const retries = new Map<number, { from: number; why: string }[]>();
  /** Pairs cut off from each other ("i|j", both ways): each one's libp2p handler refuses what the other sends. */
  const cuts = new Set<string>();
  const runs: RejoinRun[] = [];
  const cfg = { scenario, layoutHash: 'layout', rounds, roundMs, deadlineMs: roundMs / 2, codec: 'f32' as const, weighting: 'uniform' as const, train: false, proximal: false };
  const onRefused = (i: number) => (from: string, reason: string): void => { refused.push(`${i}<-${ids.indexOf(from)}:${reason}`); };
  const watch = (i: number, node: SecureDpsgdNode): void => {
    node.onSnapshot = (r, v) => snaps.set(`${ids[i]}|${r}`, v.slice());
    node.onSum = (r, s, senders) => sums.push({ receiver: ids[i]!, round: r, sum: s.slice(), senders: [...senders] });
    node.onReject = (reason, from) => refused.push(`${i}<-${ids.indexOf(from)}:${reason}`);
  };
  const transport = (i: number): PeerTransport => new PeerTransport(group[i]!.node, group[i]!.audit, scenario, { at: () => ids, all: () => ids }, startAt, { kind: 'complete' }, roundMs);
  const model = (): VectorLearner => new VectorLearner(Float32Array.from({ length }, () => rng.normal()));
  for (const [i, { node, identitySeed }] of group.entries()) {
    const t = transport(i);
    const session = new NetSecureSession({ scenario, layoutHash: 'layout', identitySeed, graph: t.staticGraph(), deadlineMs: 30_000, onRefused: onRefused(i) });
    const responder = new RekeyResponder({ scenario, layoutHash: 'layout', roundMs, session, mine: () => roundZeroKey(session, ids[i]!, scenario, identitySeed), onRefused: onRefused(i) });
    const wire = o.wire?.(i, t) ?? t;
    const el = createNode('dpsgd', session.wrap(responder.wrap(wire)), model(), { ...cfg, seed: i + 1 }, { secure: session }) as SecureDpsgdNode;
    responder.node = el;
    watch(i, el);
    runs.push({ t, session, responder, node: el, wire });
    node.models.onModel({
      receive: (_h, bytes, from) => {
        if (down[i] || cuts.has(`${i}|${ids.indexOf(from.toString())}`)) return { ok: false, reason: 'unknown-scenario' };
        runs[i]!.t.deliver(from.toString(), decodeWire(bytes) as ModelMessage);
        return { ok: true };
      },
    });
    session.setup().catch((e: unknown) => refused.push(`setup ${i}: ${String(e)}`));
    el.start();
  }
  const waitFor = async (what: string, ok: () => boolean, ms: number): Promise<void> => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; refused: ${refused.join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** Until `frac` of the way into `round` (wall clock since the run's start). */
  const at = (round: number, frac: number): Promise<void> => waitFor(`round ${round}`, () => Date.now() >= startAt + (round + frac) * roundMs, (round + 10) * roundMs + 20_000);
  /** kill -9: the run stops, nothing reaches the peer any more. */
  const kill = (i: number): void => {
    down[i] = true;
    const r = runs[i]!;
    r.node.leave();
    r.session.close();
    r.t.close();
  };
  /** Back on the same identity with a fresh key: a new transport, RejoinSession, responder and node (as the runner builds them). */
  const restart = async (i: number): Promise<RejoinSession> => {
    const t = transport(i);
    let node: SecureDpsgdNode | undefined;
    const session = new RejoinSession({ scenario, layoutHash: 'layout', identitySeed: group[i]!.identitySeed, graph: t.staticGraph(), roundMs, rounds,
      onDecided: (from, why) => { decided.set(i, { from, why }); node!.sendsFrom = from; }, onRefused: onRefused(i),
      onRetry: (from, why) => retries.set(i, [...(retries.get(i) ?? []), { from, why }]) });
    const responder = new RekeyResponder({ scenario, layoutHash: 'layout', roundMs, session, mine: () => session.mine, onRefused: onRefused(i) });
    responder.joiner = session;
    node = createNode('dpsgd', session.wrap(responder.wrap(t)), model(), { ...cfg, seed: 90 + i }, { secure: session }) as SecureDpsgdNode;
    node.sendsFrom = Number.POSITIVE_INFINITY;
    responder.node = node;
    watch(i, node);
    runs[i] = { t, session, responder, node, wire: t };
    down[i] = false;
    // the setup never holds the node's rounds back (they share the transport's queue): it resolves before any reply is in
    await session.setup();
    node.rejoin();
    return session;
  };
  /**
   * Peer `i`, alive, rejoins with a fresh key whenever a holder's burn notice says its key was released (as the runner wires it:
   * src/peer/runner.ts); `onBurnt` sees each notice that burnt a key first. The decision lands in `decided` as for a restart.
   */
  const rejoinOnBurn = (i: number, onBurnt?: (round: number, holder: string, receiver: string) => void): void => {
    runs[i]!.node.onBurnt = (round, holder, receiver) => {
      onBurnt?.(round, holder, receiver);
      const r = runs[i]!;   // the run as it is now (a second burn rejoins from the first rejoin's session)
      const node = r.node;
      const session = rejoinAfterBurn(node, r.responder, r.session, r.wire, { scenario, layoutHash: 'layout', identitySeed: group[i]!.identitySeed, graph: r.t.staticGraph(), roundMs, rounds,
        onDecided: (from, why) => { decided.set(i, { from, why }); node.sendsFrom = from; }, onRefused: onRefused(i),
        onRetry: (from, why) => retries.set(i, [...(retries.get(i) ?? []), { from, why }]) });
      runs[i] = { ...r, session };
    };
  };
  /** Max relative error of every decoded sum against the plain weighted sum of its senders' round-start models. */
  const relErr = (): number => {
    let err = 0, scale = 0;
    for (const { round, sum, senders } of sums) {
      const w = 1 / 4;   // complete graph of 4: Metropolis-Hastings weights 1 / (1 + 3)
      for (let k = 0; k < length; k++) {
        const plain = senders.reduce((a, s) => a + w * snaps.get(`${s}|${round}`)![k]!, 0);
        err = Math.max(err, Math.abs(sum[k]! - plain));
        scale = Math.max(scale, Math.abs(plain));
      }
    }
    return err / scale;
  };
  /** Cuts `i` and `j` off from each other (a partition between two live peers), or heals the cut. */
  const cut = (i: number, j: number, on: boolean): void => {
    for (const k of [`${i}|${j}`, `${j}|${i}`]) { if (on) cuts.add(k); else cuts.delete(k); }
  };
  const close = (): void => { for (const r of runs) { r.node.leave(); r.session.close(); r.t.close(); } };
  return { ids, runs, sums, refused, decided, retries, startAt, waitFor, at, kill, restart, cut, rejoinOnBurn, relErr, close };
}
