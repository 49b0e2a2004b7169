// Secure Epidemic Learning: the public receiver draw (deterministic, recomputable by anyone, receivers with < 2 senders skipped),
// each receiver's masked sum equals the plain sum of the same senders' weighted models (0 and 30% of peers killed mid-round,
// dropped masks removed from Shamir shares), tampered and replayed shares refused, and the manifest rule (secure EL needs public
// receivers).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { publicReceivers, publicRoundGraph } from '../../src/averaging/secure/receivers.ts';
import { SecureSession } from '../../src/averaging/secure/session.ts';
import { SecureDpsgdNode, SECURE_CODEC } from '../../src/averaging/secure/node.ts';
import type { AveragingTransport } from '../../src/averaging/types.ts';
import { parseManifest } from '../../src/scenario/manifest.ts';
import { checkSimPrivacy } from '../../src/sim/privacy.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { CohortError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/random.ts';
import { tamperer, withSend } from '../helpers/secure-faults.ts';

const D = 24;
const link = { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 };
const node = (rounds: number) => ({ scenario: 'sc', layoutHash: 'lh', rounds, roundMs: 100, deadlineMs: 60, codec: 'f32' as const, weighting: 'uniform' as const, train: false, proximal: false });

function vectors(n: number, seed: number): Float32Array[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: D }, () => r.normal()));
}

/** Peers `victims` die in round `round` after sending `sentTo` masked models: nothing they send after that arrives. */
function killer(victims: number[], round: number, sentTo: number) {
  return (i: number, t: AveragingTransport): AveragingTransport => {
    if (!victims.includes(i)) return t;
    let sent = 0;
    return withSend(t, (to, msg) => {
      if (t.now() < round * 100) return t.send(to, msg);
      if (t.now() < round * 100 + 1 && msg.kind === 'model' && msg.codec === SECURE_CODEC.model && sent < sentTo) { sent++; return t.send(to, msg); }
    });
  };
}

describe('public Epidemic Learning receivers', () => {
  const ids = Array.from({ length: 12 }, (_, i) => `p${i}`);

  it('is a deterministic draw of s other participants per sender, different across rounds, senders and scenarios', () => {
    const a = publicReceivers(ids, 'p3', 3, 'sc', 7);
    expect(a).toEqual(publicReceivers([...ids].reverse(), 'p3', 3, 'sc', 7)); // the participants' order does not matter
    expect(new Set(a).size).toBe(3);
    expect(a).not.toContain('p3');
    const draws = new Set([a, publicReceivers(ids, 'p3', 3, 'sc', 8), publicReceivers(ids, 'p4', 3, 'sc', 7), publicReceivers(ids, 'p3', 3, 'sc2', 7)].map((x) => x.join()));
    expect(draws.size).toBe(4);
  });

  it('spreads receivers uniformly (each peer drawn ~ s/(n-1) of the time over many rounds)', () => {
    const hits = new Map(ids.map((p) => [p, 0]));
    const rounds = 2000;
    for (let r = 0; r < rounds; r++) for (const j of publicReceivers(ids, 'p0', 3, 'sc', r)) hits.set(j, hits.get(j)! + 1);
    expect(hits.get('p0')).toBe(0);
    // expected 3/11 * 2000 = 545 per other peer; +-15% is > 5 standard deviations (sd ~ 20)
    for (const [p, h] of hits) if (p !== 'p0') expect(Math.abs(h - 545.45)).toBeLessThan(82);
  });

  it('the round graph: S_j is exactly who drew j, empty when fewer than 2 did (and then nobody sends to j)', () => {
    let skipped = 0;
    for (let r = 0; r < 50; r++) {
      const g = publicRoundGraph(ids, 2, 'sc', r);
      for (const j of ids) {
        const drew = ids.filter((k) => publicReceivers(ids, k, 2, 'sc', r).includes(j));
        const s = g.senders.get(j)!;
        expect(s).toEqual(drew.length >= 2 ? [...drew].sort() : []);
        if (drew.length === 1) skipped++;
        for (const k of ids) expect(g.receivers.get(k)!.includes(j)).toBe(s.includes(k));
      }
    }
    expect(skipped).toBeGreaterThan(0); // with s = 2 of 11, single-sender receivers do occur and are skipped
  });
});

/** Runs secure EL over n VectorLearners; checks every decoded sum against the plain weighted sum of the same senders' snapshots. */
async function exactness(n: number, victims: number[], killRound: number) {
  const xs = vectors(n, 5);
  const snaps = new Map<string, Float32Array>(); // `${peer}|${round}` -> the model it masked
  const sums: { receiver: string; round: number; sum: Float64Array; senders: string[] }[] = [];
  const rounds = 10;
  const res = await simulate({
    algorithm: 'epidemic', seed: 3, learners: xs.map((x) => new VectorLearner(x)),
    network: { topology: { kind: 'complete' }, link, stepMs: 1 }, node: node(rounds),
    settings: { s: 3, secure: new SecureSession('sc', 3) },
    ...(victims.length ? { transportFor: killer(victims, killRound, 1) } : {}),
    onNodes: (nodes) => nodes.forEach((nd) => {
      const sn = nd as SecureDpsgdNode;
      const me = (sn as unknown as { t: AveragingTransport }).t.self;
      sn.onSnapshot = (r, v) => snaps.set(`${me}|${r}`, v.slice());
      sn.onSum = (r, s, senders) => sums.push({ receiver: me, round: r, sum: s.slice(), senders: [...senders] });
    }),
  });
  const participants = Array.from({ length: n }, (_, i) => res.nodes[i]!).map((nd) => (nd as unknown as { t: AveragingTransport }).t.self);
  let err = 0, scale = 0, checked = 0;
  for (const { receiver, round, sum, senders } of sums) {
    if (senders.length === 0) continue;
    const all = publicRoundGraph(participants, 3, 'sc', round).senders.get(receiver)!;
    const w = 1 / (all.length + 1); // the weight every sender applied before masking: S_j's size, dropped senders included
    for (let i = 0; i < D; i++) {
      const plain = senders.reduce((a, k) => a + w * snaps.get(`${k}|${round}`)![i]!, 0);
      err = Math.max(err, Math.abs(sum[i]! - plain));
      scale = Math.max(scale, Math.abs(plain));
    }
    checked++;
  }
  if (process.env.COHORT_PRINT) console.log(JSON.stringify({ victims, relErr: err / scale, sumsChecked: checked }));
  return { err: err / scale, checked, stats: res.nodes.map((nd) => (nd as SecureDpsgdNode).secure), nodes: res.nodes };
}

describe('secure Epidemic Learning in the simulator', () => {
  it('every receiver\'s masked sum is the plain sum of its senders\' weighted models (max relative error <= 1e-6), no peer killed', async () => {
    const { err, checked, stats, nodes } = await exactness(10, [], 0);
    expect(checked).toBeGreaterThan(50);
    expect(err).toBeLessThanOrEqual(1e-6);
    expect(stats.every((s) => s.recovered === 0 && s.maskedRefused === 0)).toBe(true);
    expect(nodes.every((n) => n.name === 'epidemic')).toBe(true);
  });

  it('30% killed mid-round (3 of 10): survivors\' sums are exact after the dead senders\' masks are removed from shares', async () => {
    const victims = [2, 5, 7];
    const { err, checked, stats } = await exactness(10, victims, 3);
    expect(checked).toBeGreaterThan(30);
    expect(err).toBeLessThanOrEqual(1e-6);
    const live = stats.filter((_, i) => !victims.includes(i));
    expect(live.reduce((a, s) => a + s.recovered, 0)).toBeGreaterThan(0);
    expect(live.reduce((a, s) => a + s.roundsWithRecovery, 0)).toBeGreaterThan(0);
  });

  it('tampered and replayed shares are refused and counted; recovery still completes from the honest holders', async () => {
    const xs = vectors(8, 2);
    const both = (i: number, t: AveragingTransport) => tamperer(1)(i, killer([5], 3, 0)(i, t));
    const res = await simulate({
      algorithm: 'epidemic', seed: 4, learners: xs.map((x) => new VectorLearner(x)),
      network: { topology: { kind: 'complete' }, link, stepMs: 1 }, node: node(6),
      settings: { s: 3, secure: new SecureSession('sc', 4) }, transportFor: both,
    });
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    expect(st.reduce((a, s) => a + s.recovered, 0)).toBeGreaterThan(0);
    expect(st.reduce((a, s) => a + s.sharesRefused, 0)).toBeGreaterThan(0);
    expect(res.rejected.malformed + res.rejected.unsolicited).toBeGreaterThan(0);
  });
});

describe('manifest: secure Epidemic Learning', () => {
  const el = (): Record<string, any> => JSON.parse(readFileSync('scenarios/wdbc-epidemic-public.json', 'utf8'));

  it('accepts secure with public receivers, refuses it with the random draw (reason and hint)', () => {
    expect(parseManifest({ ...el(), privacy: { secure: true } }).averaging.receivers).toBe('public');
    const m = el();
    m.averaging.receivers = 'random';
    let e: unknown;
    try { parseManifest({ ...m, privacy: { secure: true } }, 'x.json'); } catch (x) { e = x; }
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).message).toMatch(/Epidemic Learning and private random receivers/);
    expect((e as CohortError).hint).toMatch(/receivers to "public"/);
  });

  it('cohort sim --libp2p --secure runs D-PSGD only: secure Epidemic Learning over real peers is refused with the reason', () => {
    const check = (algorithm: string, real: boolean) => () => checkSimPrivacy({ secure: true }, algorithm, 'f32', 'classification', 'engine', 'complete', real, 'public');
    expect(check('epidemic', false)).not.toThrow();
    expect(check('dpsgd', true)).not.toThrow();
    let e: unknown;
    try { check('epidemic', true)(); } catch (x) { e = x; }
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).code).toBe('SIM_PRIVACY');
    expect((e as CohortError).message).toMatch(/over real peers \(--libp2p\) runs D-PSGD, not "epidemic"/);
    expect((e as CohortError).hint).toMatch(/--algorithm dpsgd/);
  });
});
