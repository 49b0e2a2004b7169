/**
 * Secure averaging's key setup over the real network (src/averaging/secure/net-session.ts): four libp2p nodes on loopback, each
 * with the daemon's PeerTransport (audited sends on /cohort/model/1, real LevelDB audit log) and a NetSecureSession. One peer's
 * run "begins" late (its model handler refuses transfers at first): keys and shares are re-sent until they arrive. Every peer
 * ends with every key (checked against its peer ID) and one share of every other peer's ephemeral secret (at 4 peers the holder
 * sets of holders.ts are all 3 others, threshold 2); any two holders' shares rebuild a dealer's secret (what dropout recovery does). A tampered share, a share replayed to another holder, a share
 * forwarded by a non-dealer and a second, different key announcement are refused and counted; identical re-sends are not.
 */
import { describe, expect, it } from 'vitest';
import { decodeWire } from '../../src/averaging/message.ts';
import type { ModelMessage } from '../../src/averaging/types.ts';
import { ephemeralKeys, recoverSecret } from '../../src/averaging/secure/crypto.ts';
import { NetSecureSession, SETUP_CODEC } from '../../src/averaging/secure/net-session.ts';
import { PeerTransport } from '../../src/peer/transport.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';

const SCENARIO = 'f'.repeat(64);
const localPeers = useLocalPeers();

describe('secure key setup over libp2p', () => {
  it('delivers keys and sealed shares to every participant, rebuilds a secret from shares, refuses tampered and replayed ones', async () => {
    const { peers: group, ids } = await localPeers(4, 4242);
    const startAt = Date.now() + 4000;
    const open = [true, true, true, false];
    const refused: string[][] = [[], [], [], []];
    const received: { to: number; from: string; msg: ModelMessage }[] = [];
    const peers = group.map(({ node, audit, identitySeed }, i) => {
      const t = new PeerTransport(node, audit, SCENARIO, { at: () => ids, all: () => ids }, startAt, { kind: 'complete' }, 5000);
      const session = new NetSecureSession({ scenario: SCENARIO, layoutHash: 'layout', identitySeed, graph: t.staticGraph(), deadlineMs: 20_000,
        onRefused: (from, reason) => refused[i]!.push(`${ids.indexOf(from)}:${reason}`) });
      session.wrap(t);
      session.register(ids[i]!);
      node.models.onModel({
        receive: (_h, bytes, from) => {
          if (!open[i]) return { ok: false, reason: 'unknown-scenario' };   // its run has not begun yet
          const msg = decodeWire(bytes);
          if (msg.kind === 'model') received.push({ to: i, from: from.toString(), msg });
          t.deliver(from.toString(), msg as ModelMessage);
          return { ok: true };
        },
      });
      return { t, session };
    });
    const setups = peers.map((p) => p.session.setup());
    setTimeout(() => { open[3] = true; }, 2500);
    await Promise.all(setups);
    for (const [i, p] of peers.entries()) {
      expect([...p.session.publicKeys.keys()].sort()).toEqual([...ids].sort());
      expect(p.session.peers.get(ids[i]!)!.held.size).toBe(3);
      expect(p.session.threshold).toBe(2);
      expect([...p.session.holdersOf(ids[i]!)].sort()).toEqual(ids.filter((x) => x !== ids[i]).sort());
      expect(p.session.refusedShares + p.session.refusedAnnouncements).toBe(0);
    }
    // dropout recovery's input: any two of the three holders' shares of peer 0's secret rebuild it (checked against its announced key)
    const shares = [1, 2, 3].map((h) => peers[h]!.session.peers.get(ids[h]!)!.held.get(ids[0]!)!);
    for (const pair of [[0, 1], [1, 2], [0, 2]]) {
      const secret = await recoverSecret(pair.map((k) => shares[k]!), peers[1]!.session.publicKeys.get(ids[0]!)!);
      expect(secret).not.toBeNull();
      expect(Buffer.from(secret!).equals(Buffer.from(peers[0]!.session.peers.get(ids[0]!)!.keys.secretKey))).toBe(true);
    }
    expect(await recoverSecret(shares.slice(0, 1), peers[1]!.session.publicKeys.get(ids[0]!)!)).toBeNull();

    // attacks: peer 0's share for peer 1, replayed by peer 0 to peer 2 and forwarded by peer 1 to peer 3; a tampered copy; a new key
    const dealt = received.find((r) => r.to === 1 && r.from === ids[0] && r.msg.codec === SETUP_CODEC.deal)!.msg;
    const flipped = dealt.payload.slice();
    flipped[0] = flipped[0]! ^ 1;
    const send = (from: number, to: number, m: Partial<ModelMessage>) => peers[from]!.t.send(ids[to]!, { ...dealt, ...m } as ModelMessage);
    send(0, 2, {});                                    // replayed to another holder (which holds peer 0's share already)
    send(1, 3, {});                                    // forwarded: shareId names peer 0, the sender is peer 1
    send(0, 1, { payload: flipped });                  // tampered
    send(0, 1, {});                                    // an identical re-send: acknowledged, not counted
    const other = ephemeralKeys();
    send(2, 3, { codec: SETUP_CODEC.key, payload: new Uint8Array([...other.publicKey, ...new Uint8Array(64)]), shareId: undefined, nonce: undefined });
    await new Promise<void>((resolve, reject) => {
      const end = Date.now() + 20_000;
      const poll = setInterval(() => {
        const n = refused.flat().length;
        if (n >= 4) { clearInterval(poll); resolve(); } else if (Date.now() > end) { clearInterval(poll); reject(new Error(`only ${n} refusals: ${JSON.stringify(refused)}`)); }
      }, 100);
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(refused[2]).toEqual(['0:secure-share-refused']);
    expect(refused[3]!.sort()).toEqual(['1:secure-share-refused', '2:secure-key-refused']);
    expect(refused[1]).toEqual(['0:secure-share-refused']);
    expect(peers[1]!.session.refusedShares).toBe(1);
    expect(peers[2]!.session.refusedShares).toBe(1);
    expect(peers[3]!.session.refusedShares + peers[3]!.session.refusedAnnouncements).toBe(2);
    for (const p of peers) p.session.close();
    for (const p of peers) p.t.close();
  }, 90_000);
});
