// Dropout recovery over SecAgg+-style holder sets (holders.ts): each dealer's shares go to a public holder set of h peers drawn
// from the scenario id, threshold t (holderPlan). A receiver asks ceil(1.5 t) of the dropped dealer's holders first, the set's
// others only when too few answer. Checked here: the plan's tails against exact big-integer arithmetic; the sets (public,
// deterministic, h each, dealer excluded) are what the session deals to; requests go to holders only; with holders silent the
// widening path runs and the sums stay exact; with 30% of the peers killed every decoded sum equals the plain sum of the
// survivors; with every holder of a dropped dealer silent its receivers do not mix, and say why ('holders-short', counted).
import { describe, expect, it } from 'vitest';
import { firstAskCount, holderOrder, holderPlan, holderSets, requestsByHolder, MAX_HOLDERS } from '../../src/averaging/secure/holders.ts';
import { SecureSession } from '../../src/averaging/secure/session.ts';
import { SecureDpsgdNode, SECURE_CODEC, type NotMixedReason } from '../../src/averaging/secure/node.ts';
import type { AveragingMessage, AveragingTransport } from '../../src/averaging/types.ts';
import { peerName } from '../../src/sim/network.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';

const N = 24;
const D = 16;
const KILL_ROUND = 2;
const link = { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 };
const node = { scenario: 'sc', layoutHash: 'lh', rounds: 5, roundMs: 100, deadlineMs: 60, codec: 'f32' as const, weighting: 'uniform' as const, train: false, proximal: false };

/** `victims` stop sending in KILL_ROUND; `silent` holders never release a share (dead as far as recovery goes). */
function faults(victims: ReadonlySet<number>, silent: ReadonlySet<number>) {
  return (i: number, t: AveragingTransport): AveragingTransport => {
    const wrap = (send: (to: string, msg: AveragingMessage) => void): AveragingTransport => ({
      self: t.self, neighbours: () => t.neighbours(), peers: () => t.peers(), now: () => t.now(), setTimer: (ms, cb) => t.setTimer(ms, cb),
      clearTimer: (id) => t.clearTimer(id), computeDelay: (s) => t.computeDelay(s), onMessage: (h) => t.onMessage(h), send,
    });
    if (victims.has(i)) return wrap((to, msg) => { if (t.now() < KILL_ROUND * 100) t.send(to, msg); });
    if (silent.has(i)) return wrap((to, msg) => { if (!(msg.kind === 'model' && msg.codec === SECURE_CODEC.share)) t.send(to, msg); });
    return t;
  };
}

/** The sums every receiver decoded, against the plain float64 sums of the same senders' round-start models (as bench privacy). */
function sumChecker(session: SecureSession) {
  const snaps = new Map<string, Float32Array>();
  const out = { err: 0, scale: 0, sums: 0, notMixed: [] as { peer: string; round: number; reason: NotMixedReason; dealers: readonly string[] }[] };
  const onNodes = (nodes: readonly unknown[]): void => {
    for (const n of nodes as SecureDpsgdNode[]) {
      n.onSnapshot = (r, x) => snaps.set(`${r}|${n.peer}`, x);
      n.onNotMixed = (round, reason, dealers) => out.notMixed.push({ peer: n.peer, round, reason, dealers });
      n.onSum = (r, s, senders) => {
        const deg = (p: string) => session.neighbours.get(p)!.length;
        for (let i = 0; i < s.length; i++) {
          let plain = 0;
          for (const k of senders) plain += snaps.get(`${r}|${k}`)![i]! / (1 + Math.max(deg(n.peer), deg(k)));
          out.err = Math.max(out.err, Math.abs(s[i]! - plain));
          out.scale = Math.max(out.scale, Math.abs(plain));
        }
        out.sums++;
      };
    }
  };
  return { out, onNodes };
}

async function run(session: SecureSession | null, victims: ReadonlySet<number>, silent: ReadonlySet<number>, onNodes?: (nodes: readonly unknown[]) => void) {
  const r = new Rng(21);
  const xs = Array.from({ length: N }, () => Float32Array.from({ length: D }, () => r.normal()));
  return simulate({
    algorithm: 'dpsgd', seed: 6, learners: xs.map((x) => new VectorLearner(x)),
    network: { topology: { kind: 'random-regular', degree: 4 }, link, stepMs: 1 }, node,
    ...(session ? { settings: { secure: session } } : {}), transportFor: faults(victims, silent), ...(onNodes ? { onNodes } : {}),
  });
}

const ids = Array.from({ length: N }, (_, i) => peerName(i));
const index = (p: string): number => Number(p.slice(1));

/** C(a, b) exactly. */
function choose(a: number, b: number): bigint {
  if (b < 0 || b > a) return 0n;
  let r = 1n;
  for (let i = 1; i <= b; i++) r = (r * BigInt(a - b + i)) / BigInt(i);
  return r;
}
/** P[X >= x], X ~ Hypergeometric(N, K, h), exactly as a ratio of big integers, then to a float. */
function exactTail(N: number, K: number, h: number, x: number): number {
  let num = 0n;
  for (let k = x; k <= Math.min(K, h); k++) num += choose(K, k) * choose(N - K, h - k);
  const den = choose(N, h);
  // scale before dividing so that tails near 2^-40 keep their digits
  return Number((num * 10n ** 30n) / den) / 1e30;
}

describe('holder sets for dropout recovery', () => {
  it('orders live holders first, then a hash ring that differs per receiver; groups requests per holder', () => {
    const c = Array.from({ length: 30 }, (_, i) => `p${i}`);
    const a = holderOrder('p3', 'p1', c, new Set(['p9', 'p5']));
    expect(a.slice(0, 2)).toEqual(['p5', 'p9']);
    expect(new Set(a)).toEqual(new Set(c));
    expect(holderOrder('p3', 'p1', c, new Set(['p9', 'p5']))).toEqual(a); // deterministic
    expect(holderOrder('p3', 'p2', c, new Set()).slice(0, 10)).not.toEqual(holderOrder('p3', 'p1', c, new Set()).slice(0, 10));
    expect(firstAskCount(13, true)).toBe(19);
    expect(firstAskCount(13, false)).toBe(20);
    expect(requestsByHolder(new Map([['d1', ['a', 'b']], ['d2', ['b']]]))).toEqual(new Map([['a', ['d1']], ['b', ['d1', 'd2']]]));
  });

  it('plans h and t whose hypergeometric tails (checked exactly) meet 2^-40 collusion and 2^-20 short; h is the smallest that does', () => {
    const p100 = holderPlan(100);
    expect(p100).toMatchObject({ holders: 45, threshold: 21, meetsBounds: true });
    for (const n of [8, 24, 100, 256, 1000]) {
      const p = holderPlan(n);
      const others = n - 1, C = Math.ceil(0.2 * others), Dd = Math.ceil(0.3 * others);
      expect(p.meetsBounds).toBe(true);
      expect(p.holders).toBeLessThanOrEqual(Math.min(others, MAX_HOLDERS));
      expect(exactTail(others, C, p.holders, p.threshold)).toBeLessThanOrEqual(2 ** -40);
      expect(exactTail(others, Dd, p.holders, p.holders - p.threshold + 1)).toBeLessThanOrEqual(2 ** -20);
      expect(Math.abs(exactTail(others, Dd, p.holders, p.holders - p.threshold + 1) - p.shortTail)).toBeLessThanOrEqual(1e-9 * Math.max(p.shortTail, 1e-12));
      // one holder fewer: no threshold meets both bounds (the smallest t meeting collusion leaves too few survivors)
      const h = p.holders - 1;
      let t = 2;
      while (t <= h && exactTail(others, C, h, t) > 2 ** -40) t++;
      if (t <= h) expect(exactTail(others, Dd, h, h - t + 1)).toBeGreaterThan(2 ** -20);
    }
    // 3 peers: no holder set can survive a 30% dropout among 2 others: all hold shares, security first (named)
    expect(holderPlan(3)).toMatchObject({ holders: 2, threshold: 2, meetsBounds: false });
    // the sets: h each, never the dealer, public and deterministic, different per scenario
    const sets = holderSets(ids, 'sc', holderPlan(N).holders);
    expect(holderPlan(N)).toMatchObject({ holders: 13, threshold: 6 });
    for (const [d, hs] of sets) { expect(hs.length).toBe(13); expect(new Set(hs).size).toBe(13); expect(hs).not.toContain(d); }
    expect(holderSets([...ids].reverse(), 'sc', 13)).toEqual(sets);
    expect(holderSets(ids, 'sc2', 13).get('p0')).not.toEqual(sets.get('p0'));
  });

  it('setup deals h shares per dealer, to its holder set only; a share sealed to a peer outside the set is refused and counted', async () => {
    const session = new SecureSession('sc', 6);
    await run(session, new Set(), new Set());
    const plan = session.holderPlan!;
    expect(session.threshold).toBe(plan.threshold);
    for (const p of ids) {
      const held = [...session.peers.get(p)!.held.keys()].sort();
      expect(held).toEqual(ids.filter((d) => session.holdersOf(d).includes(p)).sort());
    }
    expect(ids.reduce((a, p) => a + session.peers.get(p)!.held.size, 0)).toBe(N * plan.holders);
    const outsider = ids.find((p) => p !== 'p0' && !session.holdersOf('p0').includes(p))!;
    session.peers.get(outsider)!.held.delete('p0'); // (not there anyway) a share sealed to it must still be refused
    const before = session.refusedShares;
    expect(session.deliverShare({ dealer: 'p0', holder: outsider, scenario: 'sc', nonce: new Uint8Array(12), box: new Uint8Array(49) })).toBe(false);
    expect(session.refusedShares).toBe(before + 1);
  });

  it('no silent holder: each receiver of the dropped peer asks ceil(1.5 t) of its holders only, and the sums stay exact', async () => {
    const victim = 7;
    const plain = await run(null, new Set([victim]), new Set());
    const session = new SecureSession('sc', 6);
    const res = await run(session, new Set([victim]), new Set());
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    const holders = session.holdersOf(peerName(victim));
    const receivers = ids.filter((p, i) => i !== victim && st[i]!.recovered > 0);
    expect(receivers.length).toBe(4);
    // one request per holder asked (one dealer): ceil(1.5 t) less the receiver's own share, among the holders other than itself
    const expected = receivers.reduce((a, r) => a + Math.min(firstAskCount(session.threshold, holders.includes(r)), holders.filter((h) => h !== r).length), 0);
    expect(st.reduce((a, s) => a + s.shareRequests, 0)).toBe(expected);
    expect(st.reduce((a, s) => a + s.sharesReleased, 0)).toBeLessThanOrEqual(expected);
    // only holders released shares
    ids.forEach((p, i) => { if (!holders.includes(p)) expect(st[i]!.sharesReleased).toBe(0); });
    expect(st.reduce((a, s) => a + s.recoveryWidened, 0)).toBe(0);
    expect(st.reduce((a, s, i) => a + (i === victim ? 0 : s.roundsNotMixed + s.holdersShort), 0)).toBe(0);
    res.finalModels.forEach((m, k) => {
      if (res.finalPeers[k] === victim) return;
      for (let i = 0; i < D; i++) expect(Math.abs(m[i]! - plain.finalModels[k]![i]!)).toBeLessThan(1e-5);
    });
  });

  it('7 of the dropped peer\'s 13 holders silent: too few of the first ones answer, the receivers widen to the rest and rebuild the exact sum', async () => {
    const victim = 7;
    const sets = holderSets(ids, 'sc', holderPlan(N).holders);
    const silent = new Set(sets.get(peerName(victim))!.slice(0, 7).map(index));
    const plain = await run(null, new Set([victim]), silent);
    const session = new SecureSession('sc', 6);
    const res = await run(session, new Set([victim]), silent);
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    expect(st.reduce((a, s) => a + s.recovered, 0)).toBe(4); // the victim's four receivers, once each
    expect(st.reduce((a, s) => a + s.recoveryWidened, 0)).toBeGreaterThan(0);
    expect(st.reduce((a, s, i) => a + (i === victim ? 0 : s.roundsNotMixed + s.holdersShort), 0)).toBe(0);
    res.finalModels.forEach((m, k) => {
      if (res.finalPeers[k] === victim) return;
      for (let i = 0; i < D; i++) expect(Math.abs(m[i]! - plain.finalModels[k]![i]!)).toBeLessThan(1e-5);
    });
  });

  it('30% of the peers killed mid-round: every decoded sum equals the plain sum of the senders received (rel. error <= 1e-6)', async () => {
    const victims = new Set(new Rng(77).sample(Array.from({ length: N - 1 }, (_, i) => i + 1), Math.round(0.3 * N)));
    const session = new SecureSession('sc', 6);
    const check = sumChecker(session);
    const res = await run(session, victims, new Set(), check.onNodes);
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    expect(victims.size).toBe(7);
    expect(check.out.sums).toBeGreaterThan(N * 2);
    expect(check.out.err / check.out.scale).toBeLessThanOrEqual(1e-6);
    const survivors = (f: (s: (typeof st)[number]) => number) => st.reduce((a, s, i) => a + (victims.has(i) ? 0 : f(s)), 0);
    expect(survivors((s) => s.recovered)).toBeGreaterThan(0);
    // no survivor lacked holders: 17 of 23 others alive, t = 6 of 13
    expect(survivors((s) => s.holdersShort)).toBe(0);
    // any survivor round not mixed is one with fewer than 2 live senders, and says so
    const survivorNotMixed = check.out.notMixed.filter((x) => !victims.has(index(x.peer)));
    expect(survivorNotMixed.length).toBe(survivors((s) => s.roundsNotMixed));
    expect(survivorNotMixed.every((x) => x.reason === 'few-senders')).toBe(true);
  });

  it('every holder of a dropped peer silent: its receivers cannot rebuild it, do not mix, and report holders-short naming it', async () => {
    const victim = 7;
    const sets = holderSets(ids, 'sc', holderPlan(N).holders);
    const silent = new Set(sets.get(peerName(victim))!.map(index));
    const session = new SecureSession('sc', 6);
    const check = sumChecker(session);
    const res = await run(session, new Set([victim]), silent, check.onNodes);
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    const receivers = session.neighbours.get(peerName(victim))!;
    expect(st.reduce((a, s) => a + s.recovered, 0)).toBe(0);
    const short = check.out.notMixed.filter((x) => x.reason === 'holders-short');
    expect(short.length).toBeGreaterThan(0);
    expect(short.every((x) => x.dealers.length === 1 && x.dealers[0] === peerName(victim) && receivers.includes(x.peer))).toBe(true);
    // counted: one per (receiver, round) here, and every one of them a round not mixed
    for (const r of receivers) {
      const s = st[index(r)]!;
      expect(s.holdersShort).toBe(short.filter((x) => x.peer === r).length);
      expect(s.roundsNotMixed).toBeGreaterThanOrEqual(s.holdersShort);
    }
    // nobody else was affected, and the sums that were mixed are still exact
    ids.forEach((p, i) => { if (!receivers.includes(p)) expect(st[i]!.holdersShort).toBe(0); });
    expect(check.out.err / check.out.scale).toBeLessThanOrEqual(1e-6);
  });
});
