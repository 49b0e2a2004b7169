/**
 * Two peers rejoining a secure D-PSGD run at once (src/averaging/secure/rejoin.ts), over the real network: four libp2p nodes on
 * loopback, each with the daemon's PeerTransport (audited sends, real LevelDB audit log), a NetSecureSession, a RekeyResponder and
 * the secure node, wired as the runner wires them. Peers 2 and 3 "die" in round 2 (node left, transport closed, libp2p handler
 * refusing everything, as a killed process's peers see it) and come back with new nodes, RejoinSessions and fresh keys.
 *   1. Staggered: peer 3 back in round 4 (r0 = 7), peer 2 in round 5 (r0 = 8). Each learns the other's fresh key before its own
 *      r0: peer 3 masks rounds [7, 8) against peer 2's OLD key (taken from a key directory: peer 2 lost it) and from 8 against its
 *      new one; peer 2 gets a share of peer 3's new key sealed to its own new key. Both mask from their r0.
 *   2. Failure: both back in round 4 (r0 = 7 for both); peer 2 dies again in round 5, after answering and dealing. Peer 3 still
 *      masks from 7; peer 2's new key takes effect at 7 everywhere and its receivers rebuild it from the shares it dealt.
 * Checked in both: every decoded sum, before, during and after, equals the plain weighted sum of the same senders' round-start
 * models (max relative error <= 1e-6); nothing is refused (but a forged key directory entry, refused and counted); masked
 * models only from each joiner's r0.
 */
import { describe, expect, it } from 'vitest';
import { REKEY_CODEC, encodeDirectory, rekeyLead, type RejoinSession } from '../../src/averaging/secure/rejoin.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';
import { secureGroup as group } from '../helpers/secure-rejoin-peers.ts';

const SCENARIO = 'e'.repeat(64);
const ROUNDS = 10;
const ROUND_MS = 3000;
const localPeers = useLocalPeers();
const secureGroup = (seed: number) => group(localPeers, { scenario: SCENARIO, seed, rounds: ROUNDS, roundMs: ROUND_MS, length: 530 });

// the three cases use their own four nodes each and mostly wait on round timers: run side by side (suite time)
describe.concurrent('two peers rejoining a secure run at once, over libp2p', () => {
  it('staggered: each learns the other\'s fresh key before its own r0 (the earlier one masks against the later one\'s old key until its r0); both mask again; every sum exact', async () => {
    const g = await secureGroup(7373);
    const { ids, runs } = g;
    const old2 = Uint8Array.from(runs[2]!.session.publicKeys.get(ids[2]!)!);
    await g.at(2, 0.3);
    g.kill(2);
    g.kill(3);
    await g.at(4, 0.4);
    await g.restart(3);
    await g.at(5, 0.4);
    await g.restart(2);
    const lead = rekeyLead(ROUND_MS);
    const r3 = 4 + lead, r2 = 5 + lead;
    await g.waitFor('both rejoin decisions', () => g.decided.size === 2, 3 * lead * ROUND_MS + 20_000);
    expect(g.decided.get(3)).toEqual({ from: r3, why: `masking with a fresh key from round ${r3}` });
    expect(g.decided.get(2)).toEqual({ from: r2, why: `masking with a fresh key from round ${r2}` });
    const new2 = runs[2]!.session.publicKeys.get(ids[2]!)!;
    const new3 = runs[3]!.session.publicKeys.get(ids[3]!)!;
    // peer 3 took peer 2's old key from a directory (signed at round 0) and holds its new one pending
    expect(Buffer.from((runs[3]!.session as RejoinSession).keyAt(ids[2]!, r3)!.publicKey).equals(Buffer.from(old2))).toBe(true);
    expect(Buffer.from((runs[3]!.session as RejoinSession).keyAt(ids[2]!, r2)!.publicKey).equals(Buffer.from(new2))).toBe(true);
    // a forged directory entry (another key for peer 2 from round 9, signed by nobody) is refused and counted, and changes nothing
    const forged = encodeDirectory([[ids[2]!, { fromRound: r2 + 1, publicKey: new Uint8Array(32).fill(7), signature: new Uint8Array(64).fill(7) }]]);
    runs[0]!.t.send(ids[3]!, { kind: 'model', scenario: SCENARIO, round: r2, layoutHash: 'layout', codec: REKEY_CODEC.dir, ...forged });
    await g.waitFor('the forged directory refused', () => g.refused.length > 0, 10_000);
    expect(g.refused.splice(0)).toEqual(['3<-0:secure-rekey-dir-refused']);
    expect(Buffer.from((runs[3]!.session as RejoinSession).keyAt(ids[2]!, r2 + 1)!.publicKey).equals(Buffer.from(new2))).toBe(true);
    await g.waitFor('every round', () => runs.every((r, i) => r.node.stats.rounds + r.node.secure.roundsNotMixed >= (i >= 2 ? ROUNDS - 6 : ROUNDS)) && Date.now() > g.startAt + ROUNDS * ROUND_MS, (ROUNDS + 8) * ROUND_MS);
    for (const i of [0, 1]) {
      expect(runs[i]!.responder.rekeyed.sort()).toEqual([ids[2], ids[3]].sort());
      expect(Buffer.from(runs[i]!.session.publicKeys.get(ids[2]!)!).equals(Buffer.from(new2))).toBe(true);
      expect(Buffer.from(runs[i]!.session.publicKeys.get(ids[3]!)!).equals(Buffer.from(new3))).toBe(true);
    }
    // each joiner swapped the other's fresh key in at its r0 (peer 2 heard peer 3's announcement, peer 3 peer 2's)
    expect(runs[2]!.responder.rekeyed).toEqual([ids[3]]);
    expect(runs[3]!.responder.rekeyed).toEqual([ids[2]]);
    expect(Buffer.from(runs[3]!.session.publicKeys.get(ids[2]!)!).equals(Buffer.from(new2))).toBe(true);
    expect(Buffer.from(runs[2]!.session.publicKeys.get(ids[3]!)!).equals(Buffer.from(new3))).toBe(true);
    // peer 2 holds a share of peer 3's new secret, sealed to peer 2's new key (and the other way round)
    expect(runs[2]!.session.peers.get(ids[2]!)!.held.has(ids[3]!)).toBe(true);
    expect(runs[3]!.session.peers.get(ids[3]!)!.held.has(ids[2]!)).toBe(true);
    // masked models only from each joiner's r0, one per receiver (3) per round
    expect(runs[3]!.node.secure.maskedSent).toBe(3 * (ROUNDS - r3));
    expect(runs[2]!.node.secure.maskedSent).toBe(3 * (ROUNDS - r2));
    // round r3: peer 2 still away; peer 3 rebuilt peer 2's OLD secret from the shares peers 0 and 1 released to its new key
    expect(runs[3]!.node.secure.recovered).toBe(1);
    expect(g.sums.some((s) => s.receiver === ids[3] && s.round === r3 && s.senders.length === 2)).toBe(true);
    for (const j of [2, 3]) {
      const from = j === 3 ? r3 : r2;
      // from its r0 on, each joiner is in every other peer's sum
      const withJ = g.sums.filter((s) => s.round >= from && s.receiver !== ids[j] && s.senders.includes(ids[j]!));
      expect(withJ.length).toBe(3 * (ROUNDS - from));
      expect(g.sums.some((s) => s.round < from && s.senders.includes(ids[j]!) && s.round > 2)).toBe(false);
    }
    const err = g.relErr();
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ case: 'staggered', sums: g.sums.length, relErr: err, r3, r2, refused: g.refused }));
    expect(err).toBeLessThanOrEqual(1e-6);
    expect(g.refused).toEqual([]);
    g.close();
  }, 240_000);

  it('one joiner dies again mid-rekey: the other still masks from its r0; the dead one\'s new key is rebuilt from its shares; every sum exact', async () => {
    const g = await secureGroup(7474);
    const { ids, runs } = g;
    await g.at(2, 0.3);
    g.kill(2);
    g.kill(3);
    await g.at(4, 0.3);
    await Promise.all([g.restart(2), g.restart(3)]);
    const r0 = 4 + rekeyLead(ROUND_MS);
    // peer 2 answered peer 3, dealt its shares (to 0, 1 and 3) and committed its key, then dies again before its r0
    const j2 = runs[2]!.session as RejoinSession;
    const j3 = runs[3]!.session as RejoinSession;
    await g.waitFor('peer 2 answered peer 3 and committed its key', () => j3.progress.answered.includes(ids[2]!) && j2.progress.committed && j2.progress.commitAcknowledged.length === 3, 3 * ROUND_MS);
    await g.at(5, 0.3);
    g.kill(2);
    const new2 = j2.publicKeys.get(ids[2]!)!;
    await g.waitFor('peer 3\'s rejoin decision', () => g.decided.has(3), 3 * rekeyLead(ROUND_MS) * ROUND_MS + 20_000);
    expect(g.decided.get(3)).toEqual({ from: r0, why: `masking with a fresh key from round ${r0}` });
    await g.waitFor('every round', () => [0, 1, 3].every((i) => runs[i]!.node.stats.rounds + runs[i]!.node.secure.roundsNotMixed >= (i === 3 ? ROUNDS - 5 : ROUNDS)) && Date.now() > g.startAt + ROUNDS * ROUND_MS, (ROUNDS + 8) * ROUND_MS);
    for (const i of [0, 1, 3]) {
      // peer 2's fresh key took effect at r0 where it had been heard, with the share it dealt
      expect(Buffer.from(runs[i]!.session.publicKeys.get(ids[2]!)!).equals(Buffer.from(new2))).toBe(true);
      expect(runs[i]!.session.peers.get(ids[i]!)!.held.has(ids[2]!)).toBe(true);
    }
    expect(runs[3]!.node.secure.maskedSent).toBe(3 * (ROUNDS - r0));
    expect(runs[2]!.node.secure.maskedSent).toBe(0);
    // from r0 on, every survivor mixes every round: peer 2's new secret rebuilt from its shares, peer 3 among the senders
    for (const i of [0, 1, 3]) {
      const after = g.sums.filter((s) => s.receiver === ids[i] && s.round >= r0);
      expect(after.map((s) => s.round)).toEqual(Array.from({ length: ROUNDS - r0 }, (_, k) => r0 + k));
      expect(after.every((s) => !s.senders.includes(ids[2]!))).toBe(true);
      if (i !== 3) expect(after.every((s) => s.senders.includes(ids[3]!))).toBe(true);
    }
    // rounds 3 to r0 - 1 had one sender at 0 and 1 (not mixed); at r0 each survivor rebuilt peer 2's new secret, once
    for (const i of [0, 1, 3]) expect(runs[i]!.node.secure.recovered).toBe(1);
    const err = g.relErr();
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ case: 'joiner dies again', sums: g.sums.length, relErr: err, r0, refused: g.refused }));
    expect(err).toBeLessThanOrEqual(1e-6);
    expect(g.refused).toEqual([]);
    g.close();
  }, 240_000);

  it('a joiner cut off from one peer until past its r0 does not commit: nobody swaps, its old secret keeps being rebuilt (no stall); it retries and masks from the new r0', async () => {
    const rounds = 12;
    const g = await group(localPeers, { scenario: 'f'.repeat(64), seed: 7575, rounds, roundMs: ROUND_MS, length: 530 });
    const { ids, runs } = g;
    await g.at(2, 0.3);
    g.kill(3);
    await g.at(4, 0.4);
    g.cut(1, 3, true);
    await g.restart(3);
    const r0 = 4 + rekeyLead(ROUND_MS);
    await g.at(r0 - 1, 0.9);
    expect((runs[3]!.session as RejoinSession).progress.committed).toBe(false);
    await g.at(r0, 0.3);
    g.cut(1, 3, false);
    const retry = r0 - 1 + rekeyLead(ROUND_MS);
    expect(g.retries.get(3)).toEqual([{ from: retry, why: `no answer from ${ids[1]}` }]);
    await g.waitFor('peer 3\'s rejoin decision', () => g.decided.has(3), 3 * rekeyLead(ROUND_MS) * ROUND_MS + 20_000);
    expect(g.decided.get(3)).toEqual({ from: retry, why: `masking with a fresh key from round ${retry}` });
    await g.waitFor('every round', () => runs.every((r, i) => r.node.stats.rounds + r.node.secure.roundsNotMixed >= (i === 3 ? rounds - 5 : rounds)) && Date.now() > g.startAt + rounds * ROUND_MS, (rounds + 8) * ROUND_MS);
    for (const i of [0, 1, 2]) {
      // the first attempt's key was never used: one swap, at the retry's r0
      expect(runs[i]!.responder.rekeyed).toEqual([ids[3]]);
      // every round from 3 on mixed, peer 3 missing until the retry's r0 (its old secret, rebuilt once), a sender from then on
      const mine = g.sums.filter((s) => s.receiver === ids[i] && s.round >= 3);
      expect(mine.map((s) => s.round)).toEqual(Array.from({ length: rounds - 3 }, (_, k) => 3 + k));
      expect(mine.every((s) => s.senders.includes(ids[3]!) === (s.round >= retry))).toBe(true);
      expect(runs[i]!.node.secure.recovered).toBe(1);
    }
    expect(runs[3]!.node.secure.maskedSent).toBe(3 * (rounds - retry));
    const err = g.relErr();
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ case: 'cut off, retry', sums: g.sums.length, relErr: err, r0, retry, refused: g.refused }));
    expect(err).toBeLessThanOrEqual(1e-6);
    expect(g.refused).toEqual([]);
    g.close();
  }, 240_000);
});
