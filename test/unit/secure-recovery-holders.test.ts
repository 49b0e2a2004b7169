// Dropout recovery asks ceil(1.5 t) share holders first (holders.ts), not every participant, and asks the others only when too
// few answer: with many holders silent (dead to the recovery) the widening path runs and the survivors' sums stay exact (the
// final models equal plain D-PSGD's); without silent holders nobody beyond the first ceil(1.5 t) is asked.
import { describe, expect, it } from 'vitest';
import { firstAskCount, holderOrder, requestsByHolder } from '../../src/averaging/secure/holders.ts';
import { SecureSession } from '../../src/averaging/secure/session.ts';
import { SecureDpsgdNode, SECURE_CODEC } from '../../src/averaging/secure/node.ts';
import type { AveragingMessage, AveragingTransport } from '../../src/averaging/types.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';

const N = 24;
const D = 16;
const KILL_ROUND = 2;
const link = { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 };
const node = { scenario: 'sc', layoutHash: 'lh', rounds: 5, roundMs: 100, deadlineMs: 60, codec: 'f32' as const, weighting: 'uniform' as const, train: false, proximal: false };

/** The victim stops sending in KILL_ROUND; `silent` holders never release a share (dead as far as recovery goes). */
function faults(victim: number, silent: ReadonlySet<number>) {
  return (i: number, t: AveragingTransport): AveragingTransport => {
    const wrap = (send: (to: string, msg: AveragingMessage) => void): AveragingTransport => ({
      self: t.self, neighbours: () => t.neighbours(), peers: () => t.peers(), now: () => t.now(), setTimer: (ms, cb) => t.setTimer(ms, cb),
      clearTimer: (id) => t.clearTimer(id), computeDelay: (s) => t.computeDelay(s), onMessage: (h) => t.onMessage(h), send,
    });
    if (i === victim) return wrap((to, msg) => { if (t.now() < KILL_ROUND * 100) t.send(to, msg); });
    if (silent.has(i)) return wrap((to, msg) => { if (!(msg.kind === 'model' && msg.codec === SECURE_CODEC.share)) t.send(to, msg); });
    return t;
  };
}

async function run(secure: boolean, victim: number, silent: ReadonlySet<number>) {
  const r = new Rng(21);
  const xs = Array.from({ length: N }, () => Float32Array.from({ length: D }, () => r.normal()));
  return simulate({
    algorithm: 'dpsgd', seed: 6, learners: xs.map((x) => new VectorLearner(x)),
    network: { topology: { kind: 'random-regular', degree: 4 }, link, stepMs: 1 }, node,
    ...(secure ? { settings: { secure: new SecureSession('sc', 6) } } : {}), transportFor: faults(victim, silent),
  });
}

describe('holder choice for dropout recovery', () => {
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

  it('no silent holder: each receiver of the dropped peer asks only ceil(1.5 t) - 1 others, and the sums stay exact', async () => {
    const victim = 7;
    const plain = await run(false, victim, new Set());
    const res = await run(true, victim, new Set());
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    const t = Math.floor(N / 2) + 1;
    const receivers = st.filter((s, i) => i !== victim && s.recovered > 0).length;
    expect(receivers).toBe(4);
    expect(st.reduce((a, s) => a + s.shareRequests, 0)).toBe(receivers * firstAskCount(t, true));
    expect(st.reduce((a, s) => a + s.recoveryWidened, 0)).toBe(0);
    expect(st.reduce((a, s, i) => a + (i === victim ? 0 : s.roundsNotMixed), 0)).toBe(0);
    res.finalModels.forEach((m, k) => {
      if (res.finalPeers[k] === victim) return;
      for (let i = 0; i < D; i++) expect(Math.abs(m[i]! - plain.finalModels[k]![i]!)).toBeLessThan(1e-5);
    });
  });

  it('9 of 24 holders silent: too few of the first ones answer, the receivers widen to the rest and still rebuild the exact sum', async () => {
    const victim = 7;
    const silent = new Set([0, 2, 4, 9, 11, 13, 16, 19, 22]);
    const plain = await run(false, victim, silent);
    const res = await run(true, victim, silent);
    const st = res.nodes.map((n) => (n as SecureDpsgdNode).secure);
    expect(st.reduce((a, s) => a + s.recovered, 0)).toBe(4); // the victim's four receivers, once each
    expect(st.reduce((a, s) => a + s.recoveryWidened, 0)).toBeGreaterThan(0);
    expect(st.reduce((a, s, i) => a + (i === victim ? 0 : s.roundsNotMixed), 0)).toBe(0);
    res.finalModels.forEach((m, k) => {
      if (res.finalPeers[k] === victim) return;
      for (let i = 0; i < D; i++) expect(Math.abs(m[i]! - plain.finalModels[k]![i]!)).toBeLessThan(1e-5);
    });
  });
});
