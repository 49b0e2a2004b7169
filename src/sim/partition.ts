/**
 * Partitioners: how a pooled sample set is spread over simulated peers (indices per peer; every peer gets at least `minPerPeer`).
 *   iid                   a random equal split, stratified by label
 *   dirichlet(alpha)      label skew (Hsu et al. 2019): for each class, its samples go to peers in proportions ~ Dir(alpha)
 *   quantity(alpha)       size skew: peer sizes ~ Dir(alpha), labels IID
 *   featureShift(s)       IID split, then each peer's inputs get its own affine "scanner" transform x*(1+s*a_k) + s*b_k
 * and the natural split (siteSplit): one peer per value of a site column, with a fixed train/test column or a per-site held-out share.
 */
import { selectSamples, type SampleSet, type SampleTensor } from '../data/samples.ts';
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';

export type PartitionSpec =
  | { kind: 'iid' }
  | { kind: 'dirichlet'; alpha: number }
  | { kind: 'quantity'; alpha: number }
  | { kind: 'feature-shift'; strength: number };

export function partitionIndices(labels: ArrayLike<number>, peers: number, spec: PartitionSpec, seed: number, minPerPeer = 2): number[][] {
  const n = labels.length;
  if (n < peers * minPerPeer) {
    throw new CohortError('PARTITION_TOO_SMALL', `${n} samples cannot give ${peers} peers ${minPerPeer} each`, 'use fewer peers or more data');
  }
  const rng = new Rng(seed);
  let parts: number[][];
  if (spec.kind === 'dirichlet') parts = dirichletLabelSkew(labels, peers, spec.alpha, rng);
  else if (spec.kind === 'quantity') parts = quantitySkew(n, peers, spec.alpha, rng);
  else parts = stratifiedDeal(labels, peers, rng);
  return topUp(parts, minPerPeer, rng);
}

/** IID: each class shuffled and dealt round-robin (continuing where the last class stopped), so every peer gets the global mix. */
function stratifiedDeal(labels: ArrayLike<number>, peers: number, rng: Rng): number[][] {
  const parts: number[][] = Array.from({ length: peers }, () => []);
  const classes = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  let k = rng.int(peers);
  for (const c of classes) {
    const idx = rng.shuffle(Array.from(labels as ArrayLike<number>, (_, i) => i).filter((i) => labels[i] === c));
    for (const i of idx) { parts[k]!.push(i); k = (k + 1) % peers; }
  }
  return parts;
}

function dirichlet(k: number, alpha: number, rng: Rng): number[] {
  const g = Array.from({ length: k }, () => rng.gamma(alpha));
  const s = g.reduce((a, b) => a + b, 0) || 1;
  return g.map((x) => x / s);
}

function dirichletLabelSkew(labels: ArrayLike<number>, peers: number, alpha: number, rng: Rng): number[][] {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    byClass.set(c, [...(byClass.get(c) ?? []), i]);
  }
  const parts: number[][] = Array.from({ length: peers }, () => []);
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = rng.shuffle(byClass.get(c)!);
    const p = dirichlet(peers, alpha, rng);
    let start = 0;
    let cum = 0;
    p.forEach((share, k) => {
      cum += share;
      const end = k === peers - 1 ? idx.length : Math.round(cum * idx.length);
      parts[k]!.push(...idx.slice(start, end));
      start = end;
    });
  }
  return parts;
}

function quantitySkew(n: number, peers: number, alpha: number, rng: Rng): number[][] {
  const order = rng.permutation(n);
  const p = dirichlet(peers, alpha, rng);
  const parts: number[][] = [];
  let start = 0;
  let cum = 0;
  p.forEach((share, k) => {
    cum += share;
    const end = k === peers - 1 ? n : Math.round(cum * n);
    parts.push(order.slice(start, end));
    start = end;
  });
  return parts;
}

/** Move samples from the largest peers to those below the minimum, so that every peer can train. */
function topUp(parts: number[][], min: number, rng: Rng): number[][] {
  for (const p of parts) {
    while (p.length < min) {
      const donor = parts.reduce((a, b) => (b.length > a.length ? b : a));
      p.push(donor.splice(rng.int(donor.length), 1)[0]!);
    }
  }
  return parts.map((p) => p.sort((a, b) => a - b));
}

/** Per-peer sample sets; feature shift applies a per-peer affine transform to every input tensor. */
export function partitionSamples(set: SampleSet, labelName: string, peers: number, spec: PartitionSpec, seed: number): SampleSet[] {
  const label = set.targets[labelName];
  if (!label) throw new CohortError('PARTITION_LABEL', `no target named "${labelName}" to partition by`, `targets: ${Object.keys(set.targets).join(', ')}`);
  const labels = perSampleLabel(label, set.size);
  const parts = partitionIndices(labels, peers, spec, seed).map((idx) => selectSamples(set, idx));
  if (spec.kind !== 'feature-shift') return parts;
  const rng = new Rng(seed ^ 0xfea7);
  return parts.map((p) => shiftFeatures(p, spec.strength, rng));
}

function perSampleLabel(t: SampleTensor, size: number): Float32Array {
  const per = t.shape.reduce((a, b) => a * b, 1);
  if (per === 1) return t.data;
  // segmentation masks: partition by "has foreground"
  return Float32Array.from({ length: size }, (_, i) => (t.data.subarray(i * per, (i + 1) * per).some((v) => v > 0) ? 1 : 0));
}

function shiftFeatures(set: SampleSet, strength: number, rng: Rng): SampleSet {
  const inputs: Record<string, SampleTensor> = {};
  for (const [name, t] of Object.entries(set.inputs)) {
    const per = t.shape.reduce((a, b) => a * b, 1);
    const gain = Float32Array.from({ length: per }, () => 1 + strength * rng.normal() * 0.5);
    const offset = Float32Array.from({ length: per }, () => strength * rng.normal() * 0.5);
    const data = Float32Array.from(t.data, (v, i) => v * gain[i % per]! + offset[i % per]!);
    inputs[name] = { shape: t.shape, data };
  }
  return { size: set.size, inputs, targets: set.targets };
}

/** A stratified split of one set into train and test (by the label's classes). */
export function stratifiedSplit(set: SampleSet, labelName: string, testShare: number, seed: number): { train: SampleSet; test: SampleSet } {
  const label = set.targets[labelName];
  const labels = label ? perSampleLabel(label, set.size) : new Float32Array(set.size);
  const rng = new Rng(seed);
  const train: number[] = [];
  const test: number[] = [];
  const classes = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  for (const c of classes) {
    const idx = rng.shuffle(Array.from(labels.keys()).filter((i) => labels[i] === c));
    const k = Math.round(idx.length * testShare);
    test.push(...idx.slice(0, k));
    train.push(...idx.slice(k));
  }
  return { train: selectSamples(set, train.sort((a, b) => a - b)), test: selectSamples(set, test.sort((a, b) => a - b)) };
}

export interface SiteParts {
  /** Site names, largest training part first (ties by name). */
  readonly names: string[];
  /** Sample indices of each site's training and test parts (ascending). */
  readonly train: number[][];
  readonly test: number[][];
}

/**
 * A natural split: one part per distinct site. With `inTrain` (a fixed train/test column, as FLamby's split) a sample is
 * training or test as marked; without it each site holds out `holdout` of its samples, stratified by `strata` (class index or
 * event indicator). Every site needs at least 2 training samples.
 */
export function siteSplit(sites: readonly string[], strata: ArrayLike<number>, o: { inTrain?: readonly boolean[]; holdout: number; seed: number }): SiteParts {
  const bySite = new Map<string, number[]>();
  sites.forEach((s, i) => { const l = bySite.get(s); if (l) l.push(i); else bySite.set(s, [i]); });
  if (bySite.size < 2) {
    throw new CohortError('SITE_SPLIT', `the site column has ${bySite.size} distinct value(s)`, 'a federation needs at least two sites: pick a column with one value per hospital');
  }
  const rng = new Rng(o.seed ^ 0x517e);
  const split = [...bySite.entries()].map(([name, idx]) => {
    if (o.inTrain) return { name, train: idx.filter((i) => o.inTrain![i]), test: idx.filter((i) => !o.inTrain![i]) };
    const train: number[] = [];
    const test: number[] = [];
    for (const c of [...new Set(idx.map((i) => strata[i]!))].sort((a, b) => a - b)) {
      const members = rng.shuffle(idx.filter((i) => strata[i] === c));
      const k = Math.round(members.length * o.holdout);
      test.push(...members.slice(0, k));
      train.push(...members.slice(k));
    }
    return { name, train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) };
  });
  const small = split.find((p) => p.train.length < 2);
  if (small) {
    throw new CohortError('SITE_SPLIT', `site "${small.name}" has ${small.train.length} training sample(s)`, 'every site needs at least 2 training samples: merge small sites or drop them');
  }
  split.sort((a, b) => b.train.length - a.train.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { names: split.map((p) => p.name), train: split.map((p) => p.train), test: split.map((p) => p.test) };
}
