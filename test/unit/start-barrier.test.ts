/**
 * The start protocol's new order (docs/daemon.md): the consortium standardiser is agreed among the round-0 participants the
 * launcher fixed, BEFORE the start time exists, and a participant counts as ready at the launcher's readiness barrier
 * (readyForStart on its heartbeat, readinessBeat) only once it is agreed — a ready training worker is not enough.
 * Real parts: three ScenarioRuns with real training workers (onnxruntime, WDBC slices on disk), real libp2p on loopback carrying
 * the statistics (/cohort/model/1), real LevelDB audit logs. Then a peer admitted after the start adopts the same standardiser,
 * and the hash is the one the exact combination of the three sites' statistics gives (the values agreed do not change).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeWire } from '../../src/averaging/message.ts';
import { agreeStandardiser, combineStats, type SiteStats } from '../../src/data/standardiser-stats.ts';
import { PeerConfigSchema } from '../../src/net/config.ts';
import { connectAll, makeConsortium, startLocalNodes } from '../../src/net/local-consortium.ts';
import type { CohortNode } from '../../src/net/node.ts';
import { DaemonSectionsSchema, type DaemonConfig } from '../../src/peer/config.ts';
import { readinessBeat, readyForStart } from '../../src/peer/coordinator.ts';
import { LocalData } from '../../src/peer/datasets.ts';
import { runPlanOf } from '../../src/peer/plan.ts';
import { ScenarioRun, type RunHost } from '../../src/peer/runner.ts';
import { StatsExchange } from '../../src/peer/stats-exchange.ts';
import { AuditLog } from '../../src/store/audit.ts';
import { DatasetRegistry } from '../../src/store/datasets.ts';
import { openStore, type Store } from '../../src/store/db.ts';

const ROOT = join(import.meta.dirname, '../..');
const SCENARIO = 'b'.repeat(64);
const manifest = JSON.parse(readFileSync(join(ROOT, 'scenarios/wdbc-radiomics.json'), 'utf8')) as Record<string, unknown>;
const plan = runPlanOf({ ...manifest, rounds: { max: 3 } });

const dirs: string[] = [];
const stores: Store[] = [];
const nodes: CohortNode[] = [];
const runs: ScenarioRun[] = [];
afterAll(async () => {
  await Promise.all(runs.map((r) => r.stop()));
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(stores.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 180_000);

/** Three hospitals' slices of WDBC (different sizes), each in its own folder as a peer config's dataset. */
function slices(): string[] {
  const [header, ...rows] = readFileSync(join(ROOT, 'data/wdbc.csv'), 'utf8').trim().split('\n');
  return [[0, 200], [200, 380], [380, rows.length]].map(([a, b]) => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-barrier-data-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'wdbc.csv'), [header, ...rows.slice(a, b)].join('\n') + '\n');
    return join(dir, 'wdbc.csv');
  });
}

/** The published run plan as the test moves it: nothing before the start, then the round-0 participants and late admissions. */
const runPlan = { round0: [] as string[], all: [] as string[] };

async function storeAndAudit(): Promise<{ store: Store; audit: AuditLog; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-barrier-'));
  dirs.push(dir);
  const store = await openStore(dir, { create: true });
  stores.push(store);
  return { store, audit: await AuditLog.open(store), dir };
}

async function scenarioRun(node: CohortNode, k: number, dataPath: string): Promise<ScenarioRun> {
  const { store, audit, dir } = await storeAndAudit();
  const cfg: DaemonConfig = { ...PeerConfigSchema.parse({ name: `site-${k}` }),
    ...DaemonSectionsSchema.parse({ data: { wdbc: { path: dataPath, options: { label: 'diagnosis' } } } }), dir, file: join(dir, 'cohort.json') };
  const host: RunHost = {
    cfg, node, store, audit, data: new LocalData(cfg, new DatasetRegistry(store.datasets)),
    publishProgress: async () => undefined, stopAt: () => undefined, failed: (_id, e) => { throw e; }, refused: () => undefined,
    participantsAt: () => runPlan.round0, participants: () => runPlan.all,
  };
  const run = new ScenarioRun(host, SCENARIO, plan);
  runs.push(run);
  // as the daemon wires it: statistics on the model path go to the run's exchange
  node.models.onModel({ receive: (_h, bytes, from) => { run.deliver(from.toString(), decodeWire(bytes)); return { ok: true }; } });
  return run;
}

const beatOf = (run: ScenarioRun) => readinessBeat([[SCENARIO, run]]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('start protocol: the standardiser is agreed before the start', () => {
  it('a ready worker is not counted ready until the standardiser is agreed; all agree the exact combination; a late peer adopts it', async () => {
    const c = await makeConsortium(4, 4242);
    const started = await startLocalNodes(c);
    nodes.push(...started);
    await connectAll(started);
    // the three round-0 participants in peer-ID order (the first decides); the fourth is admitted after the start
    const order = started.slice(0, 3).sort((a, b) => (a.peerId.toString() < b.peerId.toString() ? -1 : 1));
    const ids = order.map((n) => n.peerId.toString());
    const data = slices();
    const ps = await Promise.all(order.map((n, k) => scenarioRun(n, k, data[k]!)));
    const readies = await Promise.all(ps.map((r) => r.prepare()));
    expect(readies.every((r) => r.inputScale.mode === 'consortium')).toBe(true);

    // workers ready, standardiser not agreed: the heartbeat says both, and the barrier does not count the peer ready
    for (const r of ps) {
      expect(beatOf(r).ready).toEqual([SCENARIO]);
      expect(beatOf(r).standardising).toEqual([SCENARIO]);
      expect(readyForStart(beatOf(r), SCENARIO)).toBe(false);
    }
    // the launcher fixed the three (heartbeat `forming`); two begin: the decider cannot decide without the third, whatever the wait
    const agreeing = [ps[0]!.agreeBeforeStart(ids), ps[1]!.agreeBeforeStart(ids)];
    await sleep(4000);
    for (const r of ps) {
      expect(r.agreedHash).toBeUndefined();
      expect(readyForStart(beatOf(r), SCENARIO)).toBe(false);
    }
    // the third begins: all three agree, and only now are they ready for the start (no start time exists yet: none was needed)
    agreeing.push(ps[2]!.agreeBeforeStart(ids));
    await Promise.all(agreeing);
    const hashes = ps.map((r) => r.agreedHash);
    expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(hashes).size).toBe(1);
    for (const r of ps) {
      expect(readyForStart(beatOf(r), SCENARIO)).toBe(true);
      expect(beatOf(r).standardisers).toEqual({ [SCENARIO]: hashes[0] });
    }
    // the values are the exact combination of the three sites' statistics (what the exchange after the start agreed before)
    const stats = readies.map((r) => r.inputScale.stats as SiteStats);
    expect(agreeStandardiser(combineStats(stats), { ...readies[0]!.inputScale.meta, mode: 'consortium' }).hash).toBe(hashes[0]);

    // the start is published with the same three; a fourth peer admitted from a later round adopts the agreed standardiser
    runPlan.round0.push(...ids);
    runPlan.all.push(...ids);
    const lateNode = started[3]!;
    const { audit } = await storeAndAudit();
    const late = new StatsExchange({ node: lateNode, audit, scenario: SCENARIO, contributors: () => runPlan.round0, participants: () => runPlan.all });
    lateNode.models.onModel({ receive: (_h, bytes, from) => { const m = decodeWire(bytes); if (m.kind === 'stats') late.receive(from.toString(), m); return { ok: true }; } });
    runPlan.all.push(lateNode.peerId.toString());
    const adopted = await late.agree(stats[0]!, { layoutHash: readies[0]!.layoutHash, startAt: Date.now() - 20_000, deadlineMs: 5000, meta: readies[0]!.inputScale.meta });
    expect(adopted.hash).toBe(hashes[0]);
    expect(adopted.sites).toBe(3);
    late.close();
  }, 400_000);
});
