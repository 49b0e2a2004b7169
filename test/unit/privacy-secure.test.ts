// Secure (masked) averaging: the masks cancel exactly in a receiver's weighted sum, survivors' sums are exact after a sender
// dies mid-round (Shamir recovery), a single received contribution carries no information about the sender's model, tampered or
// replayed shares are refused and counted, and D-PSGD with masking equals plain D-PSGD step for step.
import { describe, expect, it } from 'vitest';
import {
  announce, dealShares, decodeFixed, encodeFixed, ephemeralKeys, identityKeys, openReleased, openShare, recoverSecret, releaseShare,
  verifyAnnouncement, CLIP_RANGE,
} from '../../src/averaging/secure/crypto.ts';
import { MaskedSum, PairKeys, maskedContribution } from '../../src/averaging/secure/masking.ts';
import { SecureSession } from '../../src/averaging/secure/session.ts';
import { SecureDpsgdNode, SECURE_CODEC } from '../../src/averaging/secure/node.ts';
import type { AveragingTransport } from '../../src/averaging/types.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';
import { tamperer, withSend } from '../helpers/secure-faults.ts';

const seedBytes = (k: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => (k * 31 + i * 7) & 0xff);

function peers(n: number): { ids: string[]; secret: Map<string, Uint8Array>; pks: Map<string, Uint8Array> } {
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const secret = new Map<string, Uint8Array>(), pks = new Map<string, Uint8Array>();
  ids.forEach((id, i) => { const k = ephemeralKeys(seedBytes(i + 1)); secret.set(id, k.secretKey); pks.set(id, k.publicKey); });
  return { ids, secret, pks };
}

function vectors(n: number, P: number, seed: number): Float32Array[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: P }, () => r.normal()));
}

describe('fixed point and masks', () => {
  it('encodes w*v mod 2^32 within 2^-25 and clips beyond +-128 (counted)', () => {
    const v = [0.123456789, -3.5, 100.25, 1000, -1000];
    const { out, clipped } = encodeFixed(v, 0.25);
    const d = decodeFixed(out);
    for (let i = 0; i < 3; i++) expect(Math.abs(d[i]! - 0.25 * v[i]!)).toBeLessThanOrEqual(2 ** -25);
    expect(clipped).toBe(2);
    expect(d[3]).toBeCloseTo(0.25 * CLIP_RANGE, 6);
  });

  it('the masked contributions of all senders sum to the plain weighted sum (max relative error <= 1e-6)', () => {
    const { ids, secret, pks } = peers(7);
    const receiver = ids[0]!, senders = ids.slice(1);
    const P = 1000;
    const xs = vectors(7, P, 3);
    const w = senders.map((_, k) => 0.05 + 0.02 * k);
    const sum = new MaskedSum(receiver, senders, 'sc', 4, P);
    senders.forEach((s, k) => expect(sum.add(s, maskedContribution(s, new PairKeys(secret.get(s)!, pks), receiver, senders, 'sc', 4, xs[k + 1]!, w[k]!).payload)).toBe(true));
    const got = sum.value();
    let err = 0, scale = 0;
    for (let i = 0; i < P; i++) {
      const plain = senders.reduce((a, _, k) => a + w[k]! * xs[k + 1]![i]!, 0);
      err = Math.max(err, Math.abs(got[i]! - plain));
      scale = Math.max(scale, Math.abs(plain));
    }
    expect(err / scale).toBeLessThanOrEqual(1e-6);
    // one contribution alone decodes to garbage (masked), and a second copy is refused
    const one = new MaskedSum(receiver, senders, 'sc', 4, P);
    const c = maskedContribution(senders[0]!, new PairKeys(secret.get(senders[0]!)!, pks), receiver, senders, 'sc', 4, xs[1]!, w[0]!).payload;
    one.add(senders[0]!, c);
    expect(one.add(senders[0]!, c)).toBe(false);
    expect(one.add('p99', c)).toBe(false);
    const alone = one.value();
    expect(Math.max(...Array.from(alone, (v, i) => Math.abs(v - w[0]! * xs[1]![i]!)))).toBeGreaterThan(10);
  });

  it('a neighbour\'s received bytes are independent of the sender\'s model: correlation ~ 0 over many rounds (unmasked: ~1)', () => {
    const { ids, secret, pks } = peers(4);
    const receiver = ids[0]!, senders = ids.slice(1);
    const keys = new PairKeys(secret.get(senders[0]!)!, pks);
    const r = new Rng(8);
    const xs: number[] = [], masked: number[] = [], plain: number[] = [];
    for (let round = 0; round < 400; round++) {
      const x = Float32Array.from({ length: 16 }, () => r.normal() * 20);
      const c = maskedContribution(senders[0]!, keys, receiver, senders, 'sc', round, x, 0.25).payload;
      const p = encodeFixed(x, 0.25).out;
      for (let i = 0; i < x.length; i++) { xs.push(x[i]!); masked.push((c[i]! | 0) / 2 ** 31); plain.push((p[i]! | 0) / 2 ** 31); }
    }
    const corr = (a: number[], b: number[]): number => {
      const ma = a.reduce((s, v) => s + v, 0) / a.length, mb = b.reduce((s, v) => s + v, 0) / b.length;
      let ab = 0, aa = 0, bb = 0;
      for (let i = 0; i < a.length; i++) { ab += (a[i]! - ma) * (b[i]! - mb); aa += (a[i]! - ma) ** 2; bb += (b[i]! - mb) ** 2; }
      return ab / Math.sqrt(aa * bb);
    };
    expect(xs.length).toBe(6400);
    expect(Math.abs(corr(xs, masked))).toBeLessThan(0.04); // 3 standard errors at n = 6400 is 0.0375
    expect(corr(xs, plain)).toBeGreaterThan(0.99);
    // and the masked values are spread over the whole 32-bit range (uniform: mean ~0, variance ~1/3 on [-1, 1))
    const mean = masked.reduce((s, v) => s + v, 0) / masked.length;
    const variance = masked.reduce((s, v) => s + (v - mean) ** 2, 0) / masked.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1 / 3)).toBeLessThan(0.02);
  });
});

describe('dropout recovery with Shamir shares', () => {
  it('3 of 10 senders dead: t of the survivors\' shares rebuild their secrets and the survivors\' exact sum comes out', async () => {
    const n = 11;
    const { ids, secret, pks } = peers(n);
    const receiver = ids[0]!, senders = ids.slice(1);
    const P = 300;
    const xs = vectors(n, P, 5);
    const dead = new Set(['p2', 'p5', 'p9']);
    const sum = new MaskedSum(receiver, senders, 'sc', 1, P);
    senders.forEach((s, k) => { if (!dead.has(s)) sum.add(s, maskedContribution(s, new PairKeys(secret.get(s)!, pks), receiver, senders, 'sc', 1, xs[k + 1]!, 0.1).payload); });
    expect(sum.missing()).toEqual(['p2', 'p5', 'p9']);
    const t = 6;
    for (const d of dead) {
      const holders = ids.filter((h) => h !== d).map((h) => ({ peer: h, publicKey: pks.get(h)! }));
      const sealed = await dealShares(d, 'sc', { secretKey: secret.get(d)!, publicKey: pks.get(d)! }, holders, t);
      // holders open their shares, the alive ones release them to the receiver for this round; the receiver opens them
      const released = sealed.filter((s) => !dead.has(s.holder) && s.holder !== receiver).map((s) => {
        const share = openShare(s, s.holder, 'sc', secret.get(s.holder)!, pks.get(d)!)!;
        return releaseShare(share, d, s.holder, receiver, 'sc', 1, secret.get(s.holder)!, pks.get(receiver)!);
      });
      const opened = released.map((r) => openReleased(r, receiver, 'sc', 1, secret.get(receiver)!, pks.get(r.holder)!)!);
      expect(await recoverSecret(opened.slice(0, t - 1), pks.get(d)!)).toBeNull(); // below the threshold: nothing
      const sk = await recoverSecret(opened.slice(0, t), pks.get(d)!);
      expect(sk).not.toBeNull();
      sum.removeDropped(d, sk!, pks);
    }
    const got = sum.value();
    let err = 0;
    for (let i = 0; i < P; i++) {
      const plain = senders.reduce((a, s, k) => a + (dead.has(s) ? 0 : 0.1 * xs[k + 1]![i]!), 0);
      err = Math.max(err, Math.abs(got[i]! - plain));
    }
    expect(err).toBeLessThan(1e-6);
  });

  it('refuses tampered shares, shares replayed to another round, receiver or scenario, and forged key announcements', async () => {
    const { ids, secret, pks } = peers(4);
    const [d, h, j] = ids as [string, string, string];
    const sealed = await dealShares(d, 'sc', { secretKey: secret.get(d)!, publicKey: pks.get(d)! }, [h, j, 'p3'].map((p) => ({ peer: p, publicKey: pks.get(p)! })), 2);
    const s = sealed[0]!;
    const tampered = { ...s, box: s.box.slice() };
    tampered.box[5] ^= 1;
    expect(openShare(tampered, h, 'sc', secret.get(h)!, pks.get(d)!)).toBeNull();
    expect(openShare({ ...s, scenario: 'other' }, h, 'other', secret.get(h)!, pks.get(d)!)).toBeNull();
    expect(openShare(s, j, 'sc', secret.get(j)!, pks.get(d)!)).toBeNull(); // sealed to h
    const share = openShare(s, h, 'sc', secret.get(h)!, pks.get(d)!)!;
    const r = releaseShare(share, d, h, j, 'sc', 7, secret.get(h)!, pks.get(j)!);
    expect(openReleased(r, j, 'sc', 7, secret.get(j)!, pks.get(h)!)).toEqual(share);
    expect(openReleased({ ...r, round: 8 }, j, 'sc', 8, secret.get(j)!, pks.get(h)!)).toBeNull();
    expect(openReleased(r, j, 'sc', 8, secret.get(j)!, pks.get(h)!)).toBeNull();
    expect(openReleased(r, 'p3', 'sc', 7, secret.get('p3')!, pks.get(h)!)).toBeNull();
    // a wrong share: the rebuilt secret does not match the announced key
    expect(await recoverSecret([share, share.map((b) => b ^ 1)], pks.get(d)!)).toBeNull();
    const id = identityKeys(seedBytes(40));
    const a = announce(d, 'sc', { secretKey: secret.get(d)!, publicKey: pks.get(d)! }, id.secretKey);
    expect(verifyAnnouncement(a, id.publicKey)).toBe(true);
    expect(verifyAnnouncement({ ...a, publicKey: pks.get(h)! }, id.publicKey)).toBe(false);
    expect(verifyAnnouncement({ ...a, scenario: 'other' }, id.publicKey)).toBe(false);
  });
});

const D = 24;
const link = { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 };
const node = (rounds: number) => ({ scenario: 'sc', layoutHash: 'lh', rounds, roundMs: 100, deadlineMs: 60, codec: 'f32' as const, weighting: 'uniform' as const, train: false, proximal: false });

/** Peer(s) `victim` die in round `round` after sending to `sentTo` of their receivers: nothing they send after that arrives. */
function killer(victim: number | number[], round: number, sentTo: number) {
  return (i: number, t: AveragingTransport): AveragingTransport => {
    if (!(Array.isArray(victim) ? victim.includes(i) : i === victim)) return t;
    let sent = 0;
    return withSend(t, (to, msg) => {
      if (t.now() < round * 100) return t.send(to, msg);
      if (t.now() < round * 100 + 1 && msg.kind === 'model' && (msg.codec === SECURE_CODEC.model || msg.codec === 'f32') && sent < sentTo) { sent++; return t.send(to, msg); }
    });
  };
}

describe('D-PSGD with secure averaging in the simulator', () => {
  it('equals plain D-PSGD round for round (masks cancel under the Metropolis weights), and with a peer killed mid-round', async () => {
    for (const kill of [null, { victim: 3, round: 4, sentTo: 1 }]) {
      const xs = vectors(10, D, 12);
      const run = (secure: boolean) => simulate({
        algorithm: 'dpsgd', seed: 3, learners: xs.map((x) => new VectorLearner(x)),
        network: { topology: { kind: 'random-regular', degree: 4 }, link, stepMs: 1 }, node: node(12),
        ...(secure ? { settings: { secure: new SecureSession('sc', 3) } } : {}),
        ...(kill ? { transportFor: killer(kill.victim, kill.round, kill.sentTo) } : {}),
      });
      const plain = await run(false);
      const masked = await run(true);
      let err = 0, scale = 0;
      masked.finalModels.forEach((m, k) => {
        if (kill && masked.finalPeers[k] === kill.victim) return;
        for (let i = 0; i < D; i++) { err = Math.max(err, Math.abs(m[i]! - plain.finalModels[k]![i]!)); scale = Math.max(scale, Math.abs(plain.finalModels[k]![i]!)); }
      });
      expect(err / scale, kill ? 'killed mid-round' : 'no kill').toBeLessThan(1e-5);
      if (kill) {
        // 30% killed (3 of 10, chosen so that every survivor keeps >= 2 live senders on this seed's graph): the survivors still
        // match plain D-PSGD; the receivers' own shares count towards the threshold (5 of 9 holders, 6 alive)
        const many = { victims: [2, 4, 8], round: 3 };
        const runMany = (secure: boolean) => simulate({
          algorithm: 'dpsgd', seed: 3, learners: xs.map((x) => new VectorLearner(x)),
          network: { topology: { kind: 'random-regular', degree: 4 }, link, stepMs: 1 }, node: node(8),
          ...(secure ? { settings: { secure: new SecureSession('sc', 3) } } : {}), transportFor: killer(many.victims, many.round, 2),
        });
        const a = await runMany(false), b = await runMany(true);
        let e2 = 0;
        b.finalModels.forEach((m, k) => { if (!many.victims.includes(b.finalPeers[k]!)) for (let i = 0; i < D; i++) e2 = Math.max(e2, Math.abs(m[i]! - a.finalModels[k]![i]!)); });
        expect(e2).toBeLessThan(1e-5);
        // (the dead peers themselves, still running muted, cannot recover anything: left out)
        expect(b.nodes.reduce((acc, n, i) => acc + (many.victims.includes(i) ? 0 : (n as SecureDpsgdNode).secure.roundsNotMixed), 0)).toBe(0);
        expect(b.nodes.reduce((acc, n) => acc + (n as SecureDpsgdNode).secure.recovered, 0)).toBeGreaterThanOrEqual(6);
      }
      const st = masked.nodes.map((n) => (n as SecureDpsgdNode).secure);
      if (kill) {
        // the 3 receivers the victim did not reach rebuilt its secret in its last round, the one it reached in the next; once
        // each, and every later round mixed without it
        expect(st.map((s) => s.recovered).sort()).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
        expect(st.reduce((a, s) => a + s.roundsWithRecovery, 0)).toBe(3 * (12 - kill.round) + (12 - kill.round - 1));
        expect(st.reduce((a, s) => a + s.roundsNotMixed, 0)).toBe(0);
      } else {
        expect(st.every((s) => s.recovered === 0 && s.maskedSent === 4 * 12)).toBe(true);
      }
    }
  });

  it('tampered and replayed shares are refused and counted; recovery still completes from the honest holders', async () => {
    const xs = vectors(8, D, 2);
    const victim = 5;
    const both = (i: number, t: AveragingTransport) => tamperer(1)(i, killer(victim, 3, 0)(i, t));
    const res = await simulate({
      algorithm: 'dpsgd', seed: 4, learners: xs.map((x) => new VectorLearner(x)),
      network: { topology: { kind: 'random-regular', degree: 3 }, link, stepMs: 1 }, node: node(6),
      settings: { secure: new SecureSession('sc', 4) }, transportFor: both,
    });
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    expect(st.reduce((a, s) => a + s.recovered, 0)).toBe(3); // the victim's three neighbours
    expect(st.reduce((a, s) => a + s.sharesRefused, 0)).toBeGreaterThanOrEqual(4); // per receiver: 1 tampered + 1 replayed
    expect(st.reduce((a, s) => a + s.roundsNotMixed, 0)).toBe(0);
    expect(res.rejected.malformed + res.rejected.unsolicited).toBeGreaterThanOrEqual(4);
  });
});
