// The participant rule (src/scenario/participants.ts), the gossip check per message type (src/peer/gossip.ts), redaction of what
// is gossiped (src/util/redact.ts), and the pull nonce of the averaging layer: real Ed25519 keys, real signatures.
import { describe, expect, it } from 'vitest';
import { identityFromSeed, type Identity } from '../../src/net/identity.ts';
import { newRosterBody, Roster } from '../../src/net/roster.ts';
import { sanitiseDelta, ownContribution, redactView } from '../../src/peer/gossip.ts';
import { delta, emptyView, merge, type Answer, type ScenarioView } from '../../src/scenario/lifecycle.ts';
import { endOf, participantsAt, participantsOf, signAnswer, standing, verifyAnswer, verifyRunPlan } from '../../src/scenario/participants.ts';
import { redact } from '../../src/util/redact.ts';
import { Rng } from '../../src/util/random.ts';
import { createNode } from '../../src/averaging/factory.ts';
import { SimNetwork } from '../../src/sim/network.ts';
import { makeCodec } from '../../src/averaging/compression.ts';
import type { AveragingMessage, LocalLearner } from '../../src/averaging/types.ts';

const ID = 'c'.repeat(64);
const OTHER = 'd'.repeat(64);

async function people(n: number): Promise<Identity[]> {
  const rng = new Rng(7);
  const out: Identity[] = [];
  for (let i = 0; i < n; i++) out.push(await identityFromSeed(rng));
  return out;
}

function rosterOf(ids: Identity[]): Roster {
  return new Roster({ body: { ...newRosterBody('c1', 1), version: 1, members: ids.map((m, i) => ({ peerId: m.peerId.toString(), name: `h${i}`, roles: ['data-provider'] })) }, signatures: [] });
}

const approve = (who: Identity, hash = ID, at = '2026-01-01T00:00:00Z'): Promise<Answer> => signAnswer(ID, 'approve', { hash, at }, who);

describe('signed approvals', () => {
  it('verify for their signer and scenario only; any edit breaks them', async () => {
    const [a, b] = await people(2);
    const ans = await approve(a!);
    expect(await verifyAnswer(ID, 'approve', a!.peerId.toString(), ans)).toBe(true);
    expect(await verifyAnswer(ID, 'approve', b!.peerId.toString(), ans)).toBe(false);           // claimed by another peer
    expect(await verifyAnswer(OTHER, 'approve', a!.peerId.toString(), ans)).toBe(false);        // replayed for another scenario
    expect(await verifyAnswer(ID, 'reject', a!.peerId.toString(), ans)).toBe(false);            // turned into a rejection
    expect(await verifyAnswer(ID, 'approve', a!.peerId.toString(), { ...ans, at: '2027-01-01T00:00:00Z' })).toBe(false);
    const { sig: _s, ...unsigned } = ans;
    expect(await verifyAnswer(ID, 'approve', a!.peerId.toString(), unsigned)).toBe(false);
  });
});

describe('run plan verification', () => {
  it('accepts participants with signed approvals of this manifest; names the first one without', async () => {
    const [a, b, c, outsider] = await people(4);
    const roster = rosterOf([a!, b!, c!]);
    const pa = a!.peerId.toString(), pb = b!.peerId.toString(), pc = c!.peerId.toString();
    const approvals = { [pa]: await approve(a!), [pb]: await approve(b!) };
    expect(await verifyRunPlan(ID, { startAt: 1, participants: [pa, pb], approvals }, roster)).toEqual({ ok: true });
    const noApproval = await verifyRunPlan(ID, { startAt: 1, participants: [pa, pb, pc], approvals }, roster);
    expect(noApproval).toEqual({ ok: false, reason: 'participant h2 has no approval in the run plan' });
    const forged = await verifyRunPlan(ID, { startAt: 1, participants: [pa, pc], approvals: { ...approvals, [pc]: approvals[pa]! } }, roster);
    expect(forged.ok).toBe(false);
    const otherHash = await verifyRunPlan(ID, { startAt: 1, participants: [pc], approvals: { [pc]: await signAnswer(ID, 'approve', { hash: OTHER, at: 'x' }, c!) } }, roster);
    expect(otherHash).toEqual({ ok: false, reason: 'the approval of h2 is for another manifest' });
    const stranger = outsider!.peerId.toString();
    expect((await verifyRunPlan(ID, { startAt: 1, participants: [stranger], approvals: { [stranger]: await approve(outsider!) } }, roster)).ok).toBe(false);
    // admissions are checked the same way
    expect((await verifyRunPlan(ID, { startAt: 1, participants: [pa], approvals, admitted: { [pc]: { fromRound: 3, approval: approvals[pb]! } } }, roster)).ok).toBe(false);
    expect(await verifyRunPlan(ID, { startAt: 1, participants: [pa], approvals, admitted: { [pc]: { fromRound: 3, approval: await approve(c!) } } }, roster)).toEqual({ ok: true });
  });
});

describe('the participant check, per message type', () => {
  const run = { startAt: 0, participants: ['p1', 'p2'] };
  const ans = { hash: ID, at: 't' };
  const cases: [string, ScenarioView, string, string[], string][] = [
    ['progress from a non-participant', delta.progress(ID, 'mallory', { round: 3, seq: 1, metric: 1, done: true }), 'mallory', ['p1', 'p2'], 'not-participant'],
    ['progress claimed for another participant', delta.progress(ID, 'p1', { round: 3, seq: 1, metric: 1, done: true }), 'p2', ['p1', 'p2'], 'speaks-for-other'],
    ['completion by a participant', delta.state(ID, 'finished'), 'p1', ['p1', 'p2'], 'not-launcher'],
    ['failure by a participant', delta.state(ID, 'failed', 'forged'), 'p2', ['p1', 'p2'], 'not-launcher'],
    ['failure by a non-participant', delta.state(ID, 'failed', 'forged by mallory'), 'mallory', ['p1', 'p2'], 'not-launcher'],
    ['a run plan by a non-launcher', delta.run(ID, { ...run, participants: ['mallory'] }), 'mallory', ['p1', 'p2'], 'not-launcher'],
    ['a stopping round by a non-launcher', delta.stopAt(ID, 1), 'p1', ['p1', 'p2'], 'not-launcher'],
    ['an approval for another peer', delta.approve(ID, 'p1', ans), 'mallory', ['p1', 'p2'], 'speaks-for-other'],
  ];
  for (const [what, d, from, participants, reason] of cases) {
    it(`refuses ${what} (${reason}) and keeps nothing of it`, () => {
      const r = sanitiseDelta(d, from, 'launcher', participants);
      expect(r.refused).toEqual([reason]);
      expect(merge(emptyView(ID), r.delta)).toEqual(emptyView(ID));
    });
  }
  it('keeps what each sender may say: its own progress as a participant, the launcher\'s state and plan', () => {
    expect(sanitiseDelta(delta.progress(ID, 'p1', { round: 1, seq: 1 }), 'p1', 'launcher', ['p1']).refused).toEqual([]);
    expect(sanitiseDelta(delta.state(ID, 'failed', 'deadline'), 'launcher', 'launcher', []).delta).toMatchObject({ state: 'failed', reason: 'deadline' });
    const v = merge(delta.run(ID, run), delta.progress(ID, 'launcher', { round: 0, seq: 1 }));
    expect(ownContribution(v, 'launcher', 'launcher').run).toEqual(run);
    expect(ownContribution(v, 'p1', 'launcher')).toEqual(emptyView(ID));
  });
});

describe('late admission and the end rule', () => {
  const approval = { hash: ID, at: 't', sig: 's' };
  const base: ScenarioView = { ...delta.run(ID, { startAt: 0, participants: ['a', 'b', 'c'] }) };
  it('admissions merge as a grow-only map, in any order', () => {
    const x = delta.admit(ID, base.run!, 'd', { fromRound: 4, approval });
    const y = delta.admit(ID, base.run!, 'e', { fromRound: 6, approval });
    expect(merge(merge(base, x), y)).toEqual(merge(merge(y, base), x));
    const v = merge(merge(base, x), y);
    expect(participantsOf(v)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(participantsAt(v, 3)).toEqual(['a', 'b', 'c']);
    expect(participantsAt(v, 4)).toEqual(['a', 'b', 'c', 'd']);
  });

  const rule = { clockRound: 5, dropAfterRounds: 3, minPeers: 2, rounds: 5 };
  const prog = (round: number, extra = {}) => ({ round, seq: round, ...extra });
  it('finishes when every participant is done; waits for an active one', () => {
    let v = merge(base, delta.progress(ID, 'a', prog(4, { done: true })));
    v = merge(v, delta.progress(ID, 'b', prog(4, { done: true })));
    expect(endOf(merge(v, delta.progress(ID, 'c', prog(3))), rule)).toBeUndefined();
    expect(endOf(merge(v, delta.progress(ID, 'c', prog(4, { done: true }))), rule)).toEqual({ state: 'finished' });
  });
  it('drops a participant silent for dropAfterRounds rounds, and only ends after the last round', () => {
    let v = merge(base, delta.progress(ID, 'a', prog(4, { done: true })));
    v = merge(v, delta.progress(ID, 'b', prog(4, { done: true })));
    v = merge(v, delta.progress(ID, 'c', prog(1)));
    expect(standing(v, { clockRound: 4, dropAfterRounds: 3 }).dropped).toEqual([]);
    expect(standing(v, { clockRound: 5, dropAfterRounds: 3 }).dropped).toEqual([{ peer: 'c', lastRound: 1 }]);
    expect(endOf(v, { ...rule, clockRound: 4 })).toBeUndefined();
    expect(endOf(v, rule)).toEqual({ state: 'finished' });
  });
  it('a silent peer and a failed one count alike: fewer than minPeers done fails, whichever a peer heard first', () => {
    let v = merge(base, delta.progress(ID, 'a', prog(4, { done: true })));
    v = merge(v, delta.progress(ID, 'b', prog(4, { done: true })));
    const silent = merge(v, delta.progress(ID, 'c', prog(1)));
    const failed = merge(v, delta.progress(ID, 'c', prog(1, { failed: { code: 'NOT_TRAINED', message: 'x' } })));
    const strict = { ...rule, minPeers: 3 };
    expect(endOf(silent, strict)?.state).toBe('failed');
    expect(endOf(failed, strict)?.state).toBe('failed');
    expect(endOf(silent, rule)).toEqual({ state: 'finished' });
    expect(endOf(failed, rule)).toEqual({ state: 'finished' });
  });
  it('fails only when too few participants are left after their own failures', () => {
    const failed = (p: string) => delta.progress(ID, p, prog(2, { failed: { code: 'WORKER_DIED', message: 'x' } }));
    const one = merge(base, failed('a'));
    expect(endOf(one, { ...rule, clockRound: 2 })).toBeUndefined();
    expect(endOf(merge(one, failed('b')), { ...rule, clockRound: 2 })?.state).toBe('failed');
  });
});

describe('redaction of what is gossiped', () => {
  it('removes paths, file names and addresses, keeps the meaning', () => {
    expect(redact('ENOENT: no such file or directory, open \'/srv/hospital/data/wdbc.csv\'')).toBe('ENOENT: no such file or directory, open \'<path>\'');
    expect(redact('cannot parse patients_2024.csv at line 3')).toBe('cannot parse <file> at line 3');
    expect(redact('dial /ip4/10.1.2.3/tcp/4001 failed')).not.toMatch(/10\.1\.2\.3/);
    expect(redact('C:\\data\\cohort\\x.nii.gz missing')).toBe('<path> missing');
    expect(redact('no local dataset "wdbc"')).toBe('no local dataset "wdbc"');
    expect(redact('x'.repeat(1000)).length).toBeLessThanOrEqual(300);
  });
  it('a failure, a decline and an ending reason carry no local path when gossiped', () => {
    const failed = delta.progress(ID, 'p1', { round: 2, seq: 1, failed: { code: 'WORKER_DIED', message: 'cannot open /data/site-a/patients.csv' } });
    const declined = delta.decline(ID, 'p1', { hash: ID, at: 't', reason: 'no dataset at /srv/cohort/data' });
    const ended = delta.state(ID, 'failed', 'deadline passed on /home/ops/peer');
    const out = JSON.stringify([failed, declined, ended].map(redactView));
    expect(out).not.toMatch(/\/data|\/srv|\/home|patients\.csv/);
    expect(out).toContain('WORKER_DIED');
    expect(out).toContain('cannot open <path>');
  });
});

describe('pull replies are taken only in answer to this peer\'s own pull', () => {
  class Fixed implements LocalLearner {
    constructor(private v: Float32Array) {}
    readonly sampleCount = 1;
    getParameters(): Float32Array { return this.v.slice(); }
    setParameters(v: Float32Array): void { this.v = v.slice(); }
    async train(): Promise<{ loss: number; steps: number }> { return { loss: 0, steps: 0 }; }
  }
  const cfg = { scenario: 's', layoutHash: 'L', rounds: 4, roundMs: 100, deadlineMs: 80, codec: 'f32' as const, seed: 1, weighting: 'uniform' as const, train: false, proximal: false };

  it('refuses an unsolicited reply, a reply from another peer than the one asked, and a replay; adopts the real one once', async () => {
    const net = new SimNetwork({ peers: 3, topology: { kind: 'complete' }, link: { latencyMs: 1, bandwidthBytesPerMs: 1e6, loss: 0 }, stepMs: 0, roundMs: 100, seed: 1 });
    const t = [0, 1, 2].map((i) => net.transport(i));
    let sentPull: { to: string; nonce: string } | undefined;
    const send = t[0]!.send;
    t[0] = { ...t[0]!, send: (to, msg) => { if (msg.kind === 'pull') sentPull = { to, nonce: msg.nonce }; send(to, msg); } };
    const nodes = t.map((tr, i) => createNode('dpsgd', tr, new Fixed(new Float32Array([i, i])), { ...cfg, seed: i + 1 }));
    const target = nodes[0]!;
    const codec = makeCodec('f32');
    const forged = (nonce?: string): AveragingMessage => ({ kind: 'model', scenario: 's', round: 0, layoutHash: 'L', codec: 'f32', payload: codec.encode(new Float32Array([666, 666])), purpose: 'pull-reply', ...(nonce ? { nonce } : {}) });
    const run = (ms: number) => net.clock.runUntil(net.clock.now() + ms, () => true);
    // unsolicited replies (no pull was sent): without a nonce, and with a made-up one
    t[2]!.send('p0', forged());
    t[2]!.send('p0', forged('0123456789abcdef'));
    await run(20);
    expect(target.stats.rejected.unsolicited).toBe(2);
    expect(Array.from(target.estimate())).toEqual([0, 0]);
    // p0 comes back and pulls from one neighbour: only that neighbour's reply, carrying the nonce, is adopted
    target.leave();
    target.rejoin();
    expect(sentPull).toBeDefined();
    const asked = sentPull!.to;
    const other = asked === 'p1' ? 2 : 1;
    t[other]!.send('p0', forged(sentPull!.nonce));                  // the right nonce from the wrong peer
    await run(20);
    expect(target.stats.rejected.unsolicited).toBe(3);
    const k = Number(asked.slice(1));
    expect(Array.from(target.estimate())).toEqual([k, k]);         // the real reply from the peer asked was adopted
    t[k]!.send('p0', forged(sentPull!.nonce));                      // a replay of that nonce: refused
    await run(20);
    expect(target.stats.rejected.unsolicited).toBe(4);
    expect(Array.from(target.estimate())).toEqual([k, k]);
  });
});
