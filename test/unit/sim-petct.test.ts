import { describe, expect, it } from 'vitest';
import { loadSimData } from '../../src/sim/datasets.ts';

const preprocessing = {
  modalities: ['PT', 'CT'], size: [32, 32], crop: 'mask',
  intensity: { PT: { method: 'suv', max: 20 }, CT: { method: 'window', level: 40, width: 400 } },
  augment: { flip: true, copies: 2 },
};

describe('synthetic:petct simulation data', () => {
  it('gives one site per scanner profile with fixed train/test cases, the mask and a stratification label', () => {
    const d = loadSimData({ source: 'synthetic:petct' }, { ...preprocessing, synthetic: { sites: 3, train: 2, test: 3, seed: 5 } }, 1);
    expect(new Set(d.sites)).toEqual(new Set(['site-0', 'site-1', 'site-2']));
    expect(d.sites!.length).toBe(d.set.size);
    expect(d.inTrain!.length).toBe(d.set.size);
    for (const s of ['site-0', 'site-1', 'site-2']) {
      const idx = d.sites!.map((x, i) => [x, i] as const).filter(([x]) => x === s).map(([, i]) => i);
      // augmentation (2 copies) only on the 2 training cases: 4 training samples; 3 test cases, one sample each
      expect(idx.filter((i) => d.inTrain![i]).length).toBe(4);
      expect(idx.filter((i) => !d.inTrain![i]).length).toBe(3);
    }
    expect(d.set.inputs['image']!.shape).toEqual([2, 32, 32]);
    const mask = d.set.targets['mask']!;
    expect(mask.shape).toEqual([1, 32, 32]);
    const per = 32 * 32;
    const label = d.set.targets['label']!.data;
    for (let i = 0; i < d.set.size; i++) expect(label[i]).toBe(mask.data.subarray(i * per, (i + 1) * per).some((v) => v > 0) ? 1 : 0);
    expect(label.some((v) => v === 1)).toBe(true);
  });
  it('the phantoms follow synthetic.seed (not the run seed) and the sites differ (scanner shift)', () => {
    const cfg = { ...preprocessing, augment: undefined };
    const a = loadSimData({ source: 'synthetic:petct' }, { ...cfg, synthetic: { sites: 2, train: 2, test: 2, seed: 1 } }, 1);
    const b = loadSimData({ source: 'synthetic:petct' }, { ...cfg, synthetic: { sites: 2, train: 2, test: 2, seed: 1 } }, 9);
    const c = loadSimData({ source: 'synthetic:petct' }, { ...cfg, synthetic: { sites: 2, train: 2, test: 2, seed: 2 } }, 1);
    expect(b.set.inputs['image']!.data).toEqual(a.set.inputs['image']!.data);
    expect(c.set.inputs['image']!.data).not.toEqual(a.set.inputs['image']!.data);
    // mean CT channel intensity of each site's samples: the scanner profiles shift it
    const per = 2 * 32 * 32;
    const siteMean = (s: string) => {
      const img = a.set.inputs['image']!.data;
      const idx = a.sites!.map((x, i) => [x, i] as const).filter(([x]) => x === s).map(([, i]) => i);
      let sum = 0;
      for (const i of idx) for (let v = 0; v < per; v++) sum += img[i * per + v]!;
      return sum / (idx.length * per);
    };
    expect(Math.abs(siteMean('site-0') - siteMean('site-1'))).toBeGreaterThan(1e-3);
  });
  it('refuses survival columns', () => {
    expect(() => loadSimData({ source: 'synthetic:petct' }, preprocessing, 1, { survival: { time: 't', event: 'e' } })).toThrow(/survival/);
  });
});
