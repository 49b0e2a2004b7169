/**
 * The consortium intensity z-score over the real pre-round exchange (libp2p on loopback, /cohort/model/1, audit logs on LevelDB):
 * three synthetic PET/CT sites (different scanner calibrations) send their PT voxel statistics; every peer ends with the same
 * standardiser (hash), whose PT mean/sd are the pooled values the simulator's functions give for the same three sites.
 */
import { describe, expect, it } from 'vitest';
import { decodeWire } from '../../src/averaging/message.ts';
import { parsePreprocessConfig, preprocessCases } from '../../src/data/preprocess.ts';
import { synthCase } from '../../src/data/synth.ts';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { agreedIntensity, intensityStats } from '../../src/data/intensity-stats.ts';
import { StatsExchange } from '../../src/peer/stats-exchange.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';

const SCENARIO = 'b'.repeat(64);
const config = { modalities: ['PT', 'CT'], size: [24, 24], crop: 'mask' as const,
  intensity: { PT: { method: 'zscore' as const, scope: 'consortium' as const }, CT: { method: 'window' as const, level: 40, width: 400 } } };
const cfg = parsePreprocessConfig(config);
const site = (s: number) => preprocessCases(Array.from({ length: 12 }, (_, k) => {
  const c = synthCase(s, k, { twoD: true, seed: 2 });
  return { subject: c.subject, images: { PT: c.pet, CT: c.ct }, mask: c.mask };
}), config, 5).set;

const localPeers = useLocalPeers();

describe('consortium intensity z-score over the statistics exchange', () => {
  it('three sites, one standardiser at every peer: the pooled PT mean/sd the simulator computes', async () => {
    const { peers: group, ids } = await localPeers(3, 2727);
    const exchanges = group.map(({ node, audit }) => {
      const exchange = new StatsExchange({ node, audit, scenario: SCENARIO, contributors: () => ids, participants: () => ids });
      node.models.onModel({ receive: (_h, bytes, from) => {
        const msg = decodeWire(bytes);
        if (msg.kind === 'stats') exchange.receive(from.toString(), msg);
        return { ok: true };
      } });
      return exchange;
    });
    const own = [0, 1, 3].map((s) => intensityStats(site(s), cfg, { minCount: 10 })!);
    // a long deadline: the decider's standardiser must reach the others (their own fallback would come only after 2 x 60 s, past
    // this test's limit; before the acknowledgement fix one non-decider in two missed it)
    const agreed = await Promise.all(exchanges.map((x, k) => x.agree(own[k]!, { layoutHash: 'layout', startAt: Date.now(), deadlineMs: 60_000 })));
    exchanges.forEach((x) => x.close());
    expect(new Set(agreed.map((a) => a.hash)).size).toBe(1);
    const simulated = agreeStandardiser(combineStats(own), { mode: 'consortium' });
    expect(agreed[0]!.hash).toBe(simulated.hash);
    expect(agreed[0]!.sites).toBe(3);
    const pt = agreedIntensity(agreed[0]!, cfg).PT!;
    const alone = own.map((s) => agreedIntensity(agreeStandardiser(combineStats([s])), cfg).PT!.mean);
    expect(pt.mean).toBeGreaterThan(Math.min(...alone));   // between the sites' own means: all three are in
    expect(pt.mean).toBeLessThan(Math.max(...alone));
  }, 100_000);
});
