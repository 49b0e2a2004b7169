/**
 * The pre-round standardiser exchange over real libp2p on loopback (/cohort/model/1, real audit logs on LevelDB): every peer ends
 * with the same standardiser (hash), the one the simulator computes from the same sites; a site below the small-count rule sends
 * nothing but "suppressed"; a peer that starts after the deadline adopts what the others agreed; the store keeps it for export.
 * Also the simulator's report: one hash for "consortium", one per site for "site".
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeWire } from '../../src/averaging/message.ts';
import { selectSamples, type SampleSet } from '../../src/data/samples.ts';
import { siteStats, type AgreedStandardiser, type StandardiserMeta } from '../../src/data/standardiser-stats.ts';
import { readStandardiser, saveStandardiser, StatsExchange } from '../../src/peer/stats-exchange.ts';
import { parseManifest } from '../../src/scenario/manifest.ts';
import type { AuditLog } from '../../src/store/audit.ts';
import type { Store } from '../../src/store/db.ts';
import { consortiumStandardiser, loadSimData } from '../../src/sim/datasets.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';

const SCENARIO = 'a'.repeat(64);
const wdbc = loadSimData({ source: 'data/wdbc.csv', label: 'diagnosis' }, {}, 1);
const meta: StandardiserMeta = { featureNames: wdbc.featureNames, classNames: wdbc.classNames };
/** Four sites of WDBC (different sizes), and one with 6 rows: below the small-count rule. */
const bounds = [[0, 120], [120, 260], [260, 420], [420, 563], [563, 569]] as const;
const parts: SampleSet[] = bounds.map(([a, b]) => selectSamples(wdbc.set, Array.from({ length: b - a }, (_, i) => a + i)));

const localPeers = useLocalPeers();

interface Peer { id: string; exchange: StatsExchange; store: Store; audit: AuditLog; open: boolean }

/** One peer as the daemon wires it: the model handler hands statistics messages to the run's exchange (only once it is "begun"). */
async function peers(n: number, seed: number, members?: { contributors: string[]; participants: string[] }): Promise<Peer[]> {
  const { peers: group, ids } = await localPeers(n, seed);
  return group.map(({ node, store, audit }) => {
    const exchange = new StatsExchange({ node, audit, scenario: SCENARIO, contributors: () => members?.contributors ?? ids, participants: () => members?.participants ?? ids });
    const peer: Peer = { id: node.peerId.toString(), exchange, store, audit, open: true };
    node.models.onModel({
      receive: (_h, bytes, from) => {
        if (!peer.open) return { ok: false, reason: 'unknown-scenario' };
        const msg = decodeWire(bytes);
        if (msg.kind === 'stats') exchange.receive(from.toString(), msg);
        return { ok: true };
      },
    });
    return peer;
  });
}

// each case starts its own peers and mostly waits on exchange deadlines: run side by side (suite time)
describe.concurrent('standardiser exchange over libp2p on loopback', () => {
  it('every peer agrees the simulator\'s standardiser; a small site is left out; a late peer adopts it; the store keeps it', async () => {
    // in peer ID order: the first decides; the fourth holds a site below the small-count rule; the fifth starts late
    const ps = (await peers(5, 1313)).sort((a, b) => (a.id < b.id ? -1 : 1));
    const late = ps[4]!;
    late.open = false;   // its run has not begun: the others' sends are refused and retried
    const startAt = Date.now();
    const opts = { layoutHash: 'layout', startAt, deadlineMs: 20_000, meta };   // generous: under CI load the three on-time peers' sends must all land before it
    // peer 3 holds the 6-row site: it shares nothing but "suppressed"; peer 4 (late) holds a normal site, peer 0 decides
    const own = [parts[0], parts[1], parts[2], parts[4], parts[3]].map((p) => siteStats(p!));
    expect(own[3]).toBeNull();
    const onTime = await Promise.all(ps.slice(0, 4).map((p, k) => p.exchange.agree(own[k]!, opts)));
    // the deadline passed without peer 4: the decider agreed on the three sites that may share, and the others adopted it
    const hashes = new Set(onTime.map((s) => s.hash));
    expect(hashes.size).toBe(1);
    const agreed = onTime[0]!;
    expect(agreed.sites).toBe(3);
    expect(agreed.rows).toBe(120 + 140 + 160);
    expect(agreed.featureNames).toEqual(wdbc.featureNames);
    // the simulator's function on the same sites: the same bits
    expect(consortiumStandardiser([parts[0]!, parts[1]!, parts[2]!, parts[4]!], { meta }).standardiser.hash).toBe(agreed.hash);
    // peer 4 starts after the deadline: it does not compute its own (4 sites) but adopts the one the others trained with
    late.open = true;
    const adopted: AgreedStandardiser = await late.exchange.agree(own[4]!, opts);
    expect(adopted.hash).toBe(agreed.hash);
    // kept next to the final model, read back checked against its hash
    for (const [k, p] of ps.entries()) await saveStandardiser(p.store, SCENARIO, k === 4 ? adopted : onTime[k]!);
    expect((await readStandardiser(ps[2]!.store, SCENARIO))?.hash).toBe(agreed.hash);
    // what left each peer is in its audit log (the round tally of round 0)
    await ps[0]!.audit.flush();
    const sent: string[] = [];
    for await (const e of ps[0]!.audit.entries({})) if (e.kind === 'round') sent.push(JSON.stringify(e.detail));
    expect(sent.join()).toContain('preprocessing statistics');
    for (const p of ps) p.exchange.close();
  }, 120_000);

  it('a peer admitted after round 0 contributes nothing but adopts the standardiser the others agreed', async () => {
    const members = { contributors: [] as string[], participants: [] as string[] };
    const ps = await peers(4, 99, members);
    const [first, admitted] = [ps.slice(0, 3), ps[3]!];
    members.contributors.push(...first.map((p) => p.id));
    members.participants.push(...first.map((p) => p.id));
    const opts = { layoutHash: 'layout', startAt: Date.now(), deadlineMs: 8000, meta };
    const agreed = await Promise.all(first.map((p, k) => p.exchange.agree(siteStats(parts[k]!), opts)));
    expect(new Set(agreed.map((a) => a.hash)).size).toBe(1);
    await new Promise((r) => setTimeout(r, 8100));   // past the deadline, as a peer admitted from a later round
    members.participants.push(admitted.id);          // the launcher's plan amendment
    const late = await admitted.exchange.agree(siteStats(parts[3]!), opts);
    expect(late.hash).toBe(agreed[0]!.hash);
    expect(late.sites).toBe(3);
    for (const p of ps) p.exchange.close();
  }, 60_000);

  it('a deciding peer that never answers: after a second deadline the others agree alike on what they all received', async () => {
    const ps = (await peers(3, 77)).sort((a, b) => (a.id < b.id ? -1 : 1));
    ps[0]!.open = false;   // the decider's run never begins
    const opts = { layoutHash: 'layout', startAt: Date.now(), deadlineMs: 8000, meta };
    const [a, b] = await Promise.all([ps[1]!.exchange.agree(siteStats(parts[0]!), opts), ps[2]!.exchange.agree(siteStats(parts[1]!), opts)]);
    expect(a.hash).toBe(b.hash);
    expect(a.sites).toBe(2);
    expect(a.hash).toBe(consortiumStandardiser([parts[0]!, parts[1]!], { meta }).standardiser.hash);
    for (const p of ps) p.exchange.close();
  }, 60_000);
});

describe('the simulator uses the same standardiser for every site', () => {
  const base = JSON.parse(readFileSync('scenarios/wdbc-epidemic.json', 'utf8')) as { data: { preprocessing: Record<string, unknown> } };
  const manifest = (standardize: unknown) => parseManifest({ ...base, data: { ...base.data, preprocessing: { standardize } }, rounds: { max: 2, stopping: { kind: 'max-rounds' } } });

  it('"consortium" (and true): one hash for all peers; absent: none', async () => {
    const r = await runScenarioSim(manifest('consortium'), { learner: 'softmax', baselines: false });
    // Dirichlet(0.5) over 8 peers leaves some sites below the small-count rule: they are left out, as a real site leaves itself out
    const small = r.details.samples_per_peer.filter((n) => n < 10).length;
    expect(r.standardiser).toEqual({ mode: 'consortium', hashes: [expect.stringMatching(/^[0-9a-f]{64}$/)], suppressed_sites: small });
    const legacy = await runScenarioSim(manifest(true), { learner: 'softmax', baselines: false });
    expect(legacy.standardiser?.hashes).toEqual(r.standardiser?.hashes);
    expect((await runScenarioSim(manifest(false), { learner: 'softmax', baselines: false })).standardiser).toBeUndefined();
  }, 120_000);

  it('"site" needs sites with their own test parts in the simulator', async () => {
    await expect(runScenarioSim(manifest('site'), { learner: 'softmax', baselines: false })).rejects.toMatchObject({ code: 'SIM_SITE_STANDARDISE' });
  });
});
