/**
 * Admission control (src/peer/admission.ts): the estimate from shapes only (a 10-billion-parameter spec is judged without
 * allocating it), the limits and their reasons, the queue, and the offline check on provisioned example peers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admit, checkLimits, DEFAULT_ADMISSION, estimateScenario, evaluateManifest, localShapes } from '../../src/peer/admission.ts';
import { runPlanOf } from '../../src/peer/plan.ts';
import { EXAMPLE_SITES, provisionSites, type ProvisionedSite } from '../../src/peer/provision.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const wdbc = JSON.parse(readFileSync(join(ROOT, 'scenarios/wdbc-radiomics.json'), 'utf8')) as Record<string, unknown>;
const ds = { path: join(ROOT, 'data/wdbc.csv'), options: { label: 'diagnosis' }, synthetic: false };
const cfg = { admission: DEFAULT_ADMISSION, compute: { maxConcurrentScenarios: 2 } };

describe('estimate', () => {
  it('counts the parameters of the WDBC MLP exactly and the batches per round from the local rows', () => {
    const plan = runPlanOf(wdbc);
    const local = localShapes(plan, ds);
    expect(local.inputs).toEqual({ features: [30] });
    const e = estimateScenario(plan, local, { peers: 4 });
    const hidden = (wdbc.model as { hidden: number[] }).hidden;
    const layers = [30, ...hidden, 2];
    const expected = layers.slice(1).reduce((a, u, i) => a + layers[i]! * u + u, 0);
    expect(e.parameters).toBe(expected);
    expect(e.steps_per_round).toBe(Math.ceil(569 / e.batch_size));
    expect(e.bytes_per_round).toBe(expected * 4 * 3);
    expect(checkLimits(DEFAULT_ADMISSION, e)).toEqual([]);
  });

  it('judges a 10-billion-parameter spec from shapes alone (no allocation) and declines it with the reasons', () => {
    const before = process.memoryUsage().rss;
    const plan = runPlanOf({ ...wdbc, model: { type: 'mlp', hidden: [100_000, 100_000], classes: 2 } });
    const r = admit(cfg, plan, ds, { peers: 4 });
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 ** 2);
    expect(r.estimate?.parameters).toBe(30 * 100_000 + 100_000 + 100_000 * 100_000 + 100_000 + 100_000 * 2 + 2);
    expect(r.decision).toBe('decline');
    expect(r.reasons.join(' ')).toMatch(/maxParameters/);
    expect(r.reasons.join(' ')).toMatch(/maxMemoryBytes/);
  });

  it('declines huge local epochs, billions of rounds, a full queue, a missing dataset, a model that does not fit the data', () => {
    const epochs = admit(cfg, runPlanOf({ ...wdbc, training: { ...(wdbc.training as object), localEpochs: 1e6 } }), ds, { peers: 4 });
    expect(epochs.decision).toBe('decline');
    expect(epochs.reasons.join(' ')).toMatch(/maxRoundsTimesEpochs/);
    const rounds = admit(cfg, runPlanOf({ ...wdbc, rounds: { max: 1e9 } }), ds, { peers: 4 });
    expect(rounds.reasons.join(' ')).toMatch(/maxDurationMs/);
    expect(admit(cfg, runPlanOf(wdbc), ds, { peers: 4, queued: 4 }).reasons.join(' ')).toMatch(/maxQueuedScenarios/);
    expect(admit(cfg, runPlanOf(wdbc), ds, { peers: 4, queued: 3 }).decision).toBe('approve');
    expect(admit(cfg, runPlanOf(wdbc), undefined, { peers: 4 }).reasons).toEqual(['no local dataset "wdbc"']);
    const unet = admit(cfg, runPlanOf({ ...wdbc, model: { type: 'unet2d', classes: 1 } }), ds, { peers: 4 });
    expect(unet.decision).toBe('decline');
    expect(unet.reasons[0]).toMatch(/does not fit the local data/);
  });
});

describe('cohort scenario check (offline, provisioned example peers)', () => {
  let dir: string;
  let sites: ProvisionedSite[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-admission-'));
    sites = await provisionSites(dir, EXAMPLE_SITES, { wdbc: join(ROOT, 'data/wdbc.csv') });
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('approve by policy, manual when the policy does not cover it, decline over a limit', async () => {
    const a = await evaluateManifest(sites[0]!.config, wdbc);
    expect(a.decision).toBe('approve');
    expect(a.estimate?.parameters).toBeGreaterThan(0);
    // site-c auto-approves the mlp family; a cnn2d on its PET/CT folder is left to its operator
    const seg = JSON.parse(readFileSync(join(ROOT, 'scenarios/petct-segmentation.json'), 'utf8')) as Record<string, unknown>;
    const manual = await evaluateManifest(sites[2]!.config, { ...seg, model: { type: 'cnn2d', classes: 2 }, task: { kind: 'classification', metric: 'accuracy' }, loss: { type: 'cross-entropy' } }, { author: 'site-b' });
    expect(manual.decision).toBe('manual');
    const big = await evaluateManifest(sites[1]!.config, { ...wdbc, model: { type: 'mlp', hidden: [16_000, 16_000, 2000], classes: 2 } });
    expect(big.decision).toBe('decline');
    expect(big.estimate?.parameters).toBe(288_518_002);
  });
});
