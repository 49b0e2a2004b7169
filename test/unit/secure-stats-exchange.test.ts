/**
 * The consortium statistics as a secure sum (privacy.secure; src/averaging/secure/secure-sum.ts, src/peer/stats-exchange.ts) over
 * real libp2p on loopback: four peers, each with the daemon's PeerTransport, a NetSecureSession (the scenario's key setup) and a
 * StatsExchange given that session's pairwise keys. Every peer ends with one standardiser hash; its numbers equal the clear
 * computation (combineStats + agreeStandardiser of the same sites) within 1e-12 relative (fixed point 2^-64, exact integer sum,
 * one rounding to float64, where combineStats rounds at each addition); counts are exact. No message carries a site's statistics in
 * the clear: every masked vector captured on the wire differs from that site's plain encoding in every word, and its decoded
 * numbers are uncorrelated with the site's values. A site below the small-count rule sends a masked zero vector (test 2).
 */
import { describe, expect, it } from 'vitest';
import { decodeWire, type StatsMessage } from '../../src/averaging/message.ts';
import type { ModelMessage } from '../../src/averaging/types.ts';
import { NetSecureSession } from '../../src/averaging/secure/net-session.ts';
import { decode, encode, flatten, fromWire, layoutOf, maskStats, sumMasked, unflatten } from '../../src/averaging/secure/secure-sum.ts';
import { ephemeralKeys } from '../../src/averaging/secure/crypto.ts';
import { PairKeys } from '../../src/averaging/secure/masking.ts';
import { selectSamples, type SampleSet } from '../../src/data/samples.ts';
import { agreeStandardiser, combineStats, decodeJson, siteStats, type AgreedStandardiser, type SiteStats, type StandardiserMeta } from '../../src/data/standardiser-stats.ts';
import { StatsExchange } from '../../src/peer/stats-exchange.ts';
import { PeerTransport } from '../../src/peer/transport.ts';
import { loadSimData } from '../../src/sim/datasets.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';

const SCENARIO = 'c'.repeat(64);
const wdbc = loadSimData({ source: 'data/wdbc.csv', label: 'diagnosis' }, {}, 1);
const meta: StandardiserMeta = { featureNames: wdbc.featureNames, classNames: wdbc.classNames };
const slice = (a: number, b: number): SampleSet => selectSamples(wdbc.set, Array.from({ length: b - a }, (_, i) => a + i));

const localPeers = useLocalPeers();

interface Captured { from: string; msg: StatsMessage }

/** n peers wired as the daemon wires a secure run: setup messages to the session, statistics to the exchange. */
async function securePeers(n: number, seed: number, captured: Captured[]) {
  const { peers: group, ids } = await localPeers(n, seed);
  const startAt = Date.now();
  return group.map(({ node, audit, identitySeed }, i) => {
    const t = new PeerTransport(node, audit, SCENARIO, { at: () => ids, all: () => ids }, startAt, { kind: 'complete' }, 5000);
    const session = new NetSecureSession({ scenario: SCENARIO, layoutHash: 'layout', identitySeed, graph: t.staticGraph(), deadlineMs: 60_000 });
    session.wrap(t);
    session.register(ids[i]!);
    const exchange = new StatsExchange({ node, audit, scenario: SCENARIO, contributors: () => ids, participants: () => ids });
    node.models.onModel({
      receive: (_h, bytes, from) => {
        const msg = decodeWire(bytes);
        if (msg.kind === 'stats') {
          captured.push({ from: from.toString(), msg });
          exchange.receive(from.toString(), msg);
        } else t.deliver(from.toString(), msg as ModelMessage);
        return { ok: true };
      },
    });
    return { id: ids[i]!, session, exchange, t, audit, startAt };
  });
}

function pearson(a: readonly number[], b: readonly number[]): number {
  const m = (v: readonly number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  const ma = m(a), mb = m(b);
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < a.length; i++) { sab += (a[i]! - ma) * (b[i]! - mb); saa += (a[i]! - ma) ** 2; sbb += (b[i]! - mb) ** 2; }
  return sab / Math.sqrt(saa * sbb);
}

function expectClose(got: AgreedStandardiser, want: AgreedStandardiser): void {
  expect(got.rows).toBe(want.rows);
  expect(got.sites).toBe(want.sites);
  expect(got.classCounts).toEqual(want.classCounts);
  expect(Object.keys(got.inputs)).toEqual(Object.keys(want.inputs));
  for (const [name, w] of Object.entries(want.inputs)) {
    const g = got.inputs[name]!;
    w.mean.forEach((x, j) => expect(Math.abs(g.mean[j]! - x)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(x))));
    w.std.forEach((x, j) => expect(Math.abs(g.std[j]! - x)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(x))));
  }
}

describe('secure sum of the consortium statistics over libp2p', () => {
  it('four sites agree one standardiser = the clear computation; no masked vector reveals its site\'s statistics', async () => {
    const captured: Captured[] = [];
    const ps = await securePeers(4, 1717, captured);
    const own: SiteStats[] = [[0, 120], [120, 260], [260, 420], [420, 569]].map(([a, b]) => siteStats(slice(a!, b!), { classes: 2 })!);
    const opts = (k: number) => ({ layoutHash: 'layout', startAt: ps[k]!.startAt, deadlineMs: 60_000, meta, secure: () => ps[k]!.session.pairKeys() });
    const agreed = await Promise.all(ps.map((p, k) => p.exchange.agree(own[k]!, opts(k))));
    expect(new Set(agreed.map((s) => s.hash)).size).toBe(1);
    const clear = agreeStandardiser(combineStats(own), { ...meta, mode: 'consortium' });
    expectClose(agreed[0]!, clear);
    console.log(`secure standardiser ${agreed[0]!.hash.slice(0, 12)}, clear ${clear.hash.slice(0, 12)} (equal only if every decoded sum rounds alike)`);
    expect(agreed[0]!.rows).toBe(569);
    expect(agreed[0]!.classCounts).toEqual([357, 212]);

    // on the wire: masked vectors only (and the agreed standardiser); never the clear statistics
    expect(captured.some((c) => c.msg.body === 'stats' || c.msg.body === 'suppressed')).toBe(false);
    for (const [k, p] of ps.entries()) {
      const sent = captured.find((c) => c.from === p.id && c.msg.body === 'masked');
      expect(sent).toBeDefined();
      const wire = fromWire(decodeJson(sent!.msg.payload));
      expect(wire.layout).toEqual(layoutOf(own[k]!));
      const values = flatten(own[k]!, wire.layout);
      const plain = encode(values).words;
      expect(wire.words.filter((w, i) => w === plain[i]).length).toBe(0);
      const seen = decode(wire.words);
      // the masked numbers are of the size of the 2^192 ring, not of the data, and not correlated with it
      expect(Math.abs(pearson(seen, values))).toBeLessThan(0.5);
      expect(seen.filter((x, i) => Math.abs(x - values[i]!) < 1e6).length).toBeLessThanOrEqual(1);
    }
    // what left each peer is in its audit log
    await ps[1]!.audit.flush();
    const sent: string[] = [];
    for await (const e of ps[1]!.audit.entries({})) if (e.kind === 'round') sent.push(JSON.stringify(e.detail));
    expect(sent.join()).toContain('pairwise-masked');
    for (const p of ps) { p.exchange.close(); p.session.close(); p.t.close(); }
  }, 120_000);

  it('a site below the small-count rule sends a masked zero vector: the total is the other three sites\'', async () => {
    const captured: Captured[] = [];
    const ps = await securePeers(4, 2929, captured);
    const own = [[0, 150], [150, 300], [300, 563], [563, 569]].map(([a, b]) => siteStats(slice(a!, b!), { classes: 2 }));
    expect(own[3]).toBeNull();
    const opts = (k: number) => ({ layoutHash: 'layout', startAt: ps[k]!.startAt, deadlineMs: 60_000, meta, secure: () => ps[k]!.session.pairKeys() });
    const agreed = await Promise.all(ps.map((p, k) => p.exchange.agree(own[k]!, opts(k))));
    expect(new Set(agreed.map((s) => s.hash)).size).toBe(1);
    expectClose(agreed[0]!, agreeStandardiser(combineStats(own.slice(0, 3) as SiteStats[]), { ...meta, mode: 'consortium' }));
    expect(agreed[0]!.sites).toBe(3);
    // the small site's message is a masked vector like the others' (not "suppressed"): which site was small is not on the wire
    expect(captured.some((c) => c.from === ps[3]!.id && c.msg.body === 'masked')).toBe(true);
    expect(captured.some((c) => c.msg.body === 'suppressed')).toBe(false);
    for (const p of ps) { p.exchange.close(); p.session.close(); p.t.close(); }
  }, 120_000);
});

describe('secure-sum arithmetic (no network)', () => {
  it('masks of four senders cancel: the decoded total is the clear one within 1e-12; a lone sender\'s vector is masked', () => {
    const own = [[0, 120], [120, 260], [260, 420], [420, 569]].map(([a, b]) => siteStats(slice(a!, b!), { classes: 2 })!);
    const ids = ['p0', 'p1', 'p2', 'p3'];
    const keys = ids.map(() => ephemeralKeys());
    const pub = new Map(ids.map((id, k) => [id, keys[k]!.publicKey]));
    const layout = layoutOf(own[0]!);
    const masked = ids.map((id, k) => maskStats(id, new PairKeys(keys[k]!.secretKey, pub), ids, SCENARIO, 0, flatten(own[k]!, layout)));
    expect(masked.every((m) => m.clipped === 0)).toBe(true);
    const total = unflatten(decode(sumMasked(masked.map((m) => m.words))), layout);
    const clear = combineStats(own);
    expect(total.rows).toBe(clear.rows);
    expect(total.inputs['features']!.n).toEqual(clear.inputs['features']!.n);
    const rel = (a: number[], b: number[]) => Math.max(...a.map((x, j) => Math.abs(x - b[j]!) / Math.max(1, Math.abs(b[j]!))));
    const diff = Math.max(rel(total.inputs['features']!.sum, clear.inputs['features']!.sum), rel(total.inputs['features']!.sumsq, clear.inputs['features']!.sumsq));
    console.log(`secure-sum: max relative difference of sums/sumsq vs combineStats ${diff}`);
    expect(diff).toBeLessThanOrEqual(1e-12);
    // one sender alone (no other senders, hence no masks) sends its plain encoding: what the network test checks never happens
    const alone = maskStats('p0', new PairKeys(keys[0]!.secretKey, pub), ['p0'], SCENARIO, 0, flatten(own[0]!, layout)).words;
    expect(alone).toEqual(encode(flatten(own[0]!, layout)).words);
    expect(masked[0]!.words.filter((w, i) => w === alone[i]).length).toBe(0);
  });
});
