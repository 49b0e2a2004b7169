/**
 * Mixing matrices and the measures of consensus.
 *
 *   metropolisWeights(graph)        W_ij = 1/(1+max(d_i,d_j)) on edges, W_ii = 1 - sum_j W_ij (symmetric, doubly stochastic)
 *   isDoublyStochastic(W, tol)
 *   secondEigenvalueModulus(W)      lambda_2 of a symmetric W (Jacobi eigenvalues); spectral gap = 1 - lambda_2
 *   consensusDistance(xs, weights?) (1/n) sum_i ||x_i - xbar||^2 with xbar the (weighted) mean
 *   weightedMean(xs, weights?)      Float64 accumulation
 */
import type { Vec } from './compression.ts';

/** Undirected graph: adjacency list by node index (must be symmetric). */
export type Graph = readonly (readonly number[])[];

export function metropolisWeights(graph: Graph): number[][] {
  const n = graph.length;
  const W = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    const di = graph[i]!.length;
    let off = 0;
    for (const j of graph[i]!) {
      const w = 1 / (1 + Math.max(di, graph[j]!.length));
      W[i]![j] = w;
      off += w;
    }
    W[i]![i] = 1 - off;
  }
  return W;
}

/** Row and column sums all 1, no negative entry. */
export function isDoublyStochastic(W: readonly (readonly number[])[], tol = 1e-12): boolean {
  const n = W.length;
  for (let i = 0; i < n; i++) {
    let row = 0;
    let col = 0;
    for (let j = 0; j < n; j++) {
      if (W[i]![j]! < -tol) return false;
      row += W[i]![j]!;
      col += W[j]![i]!;
    }
    if (Math.abs(row - 1) > tol || Math.abs(col - 1) > tol) return false;
  }
  return true;
}

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations (n <= a few hundred). */
export function symmetricEigenvalues(M: readonly (readonly number[])[]): number[] {
  const n = M.length;
  const A = M.map((r) => [...r]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p]![q]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p]![q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q]![q]! - A[p]![p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k]![p]!;
          const akq = A[k]![q]!;
          A[k]![p] = c * akp - s * akq;
          A[k]![q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p]![k]!;
          const aqk = A[q]![k]!;
          A[p]![k] = c * apk - s * aqk;
          A[q]![k] = s * apk + c * aqk;
        }
      }
    }
  }
  return A.map((r, i) => r[i]!);
}

/** Second-largest eigenvalue modulus: consensus distance decays like lambda_2^(2t). */
export function secondEigenvalueModulus(W: readonly (readonly number[])[]): number {
  const mods = symmetricEigenvalues(W).map(Math.abs).sort((a, b) => b - a);
  return mods[1] ?? 0;
}

export function weightedMean(xs: readonly Vec[], weights?: readonly number[]): Float64Array {
  const d = xs[0]?.length ?? 0;
  const out = new Float64Array(d);
  let total = 0;
  xs.forEach((x, k) => {
    const w = weights ? weights[k]! : 1;
    total += w;
    for (let i = 0; i < d; i++) out[i] = out[i]! + w * x[i]!;
  });
  for (let i = 0; i < d; i++) out[i] = out[i]! / total;
  return out;
}

export function consensusDistance(xs: readonly Vec[], weights?: readonly number[]): number {
  if (xs.length === 0) return 0;
  const mean = weightedMean(xs, weights);
  let s = 0;
  for (const x of xs) for (let i = 0; i < mean.length; i++) s += (x[i]! - mean[i]!) ** 2;
  return s / xs.length;
}

/**
 * A random k-regular graph, deterministic for the Rng (k*n must be even). Pairing model with local rejection (Steger & Wormald):
 * join two random free stubs of different, not yet adjacent nodes; restart on a dead end. Near-uniform, fast for k up to ~n/2.
 */
export function randomRegularGraph(n: number, k: number, rng: { int(n: number): number }): number[][] {
  if (k >= n || (k * n) % 2 === 1) throw new Error(`no ${k}-regular graph on ${n} nodes`);
  for (let attempt = 0; attempt < 200; attempt++) {
    const adj = Array.from({ length: n }, () => new Set<number>());
    const stubs = Array.from({ length: n * k }, (_, i) => i % n);
    let stuck = false;
    while (stubs.length && !stuck) {
      let tries = 0;
      for (;;) {
        const a = rng.int(stubs.length);
        const b = rng.int(stubs.length);
        const u = stubs[a]!;
        const v = stubs[b]!;
        if (a !== b && u !== v && !adj[u]!.has(v)) {
          adj[u]!.add(v);
          adj[v]!.add(u);
          for (const idx of [a, b].sort((x, y) => y - x)) { stubs[idx] = stubs[stubs.length - 1]!; stubs.pop(); }
          break;
        }
        if (++tries > 50 * n) { stuck = true; break; }
      }
    }
    if (!stuck) return adj.map((s) => [...s].sort((x, y) => x - y));
  }
  throw new Error(`could not draw a ${k}-regular graph on ${n} nodes`);
}

export function ringGraph(n: number): number[][] {
  if (n === 1) return [[]];
  if (n === 2) return [[1], [0]];
  return Array.from({ length: n }, (_, i) => [(i + n - 1) % n, (i + 1) % n].sort((a, b) => a - b));
}

export function completeGraph(n: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => j).filter((j) => j !== i));
}

/** Two cliques of floor(n/2) and ceil(n/2) nodes joined by a single edge (node h-1 to node h, h = floor(n/2)). */
export function dumbbellGraph(n: number): number[][] {
  const h = Math.floor(n / 2);
  if (h < 1 || n - h < 1) throw new Error(`a dumbbell needs at least 2 nodes, got ${n}`);
  const adj = Array.from({ length: n }, (_, i) => {
    const [lo, hi] = i < h ? [0, h] : [h, n];
    return Array.from({ length: hi - lo }, (_, k) => lo + k).filter((j) => j !== i);
  });
  adj[h - 1]!.push(h);
  adj[h]!.unshift(h - 1);
  return adj;
}

/** The degree of the expander topology: a random d-regular graph with d = round(2 ln n) (~ log n), at least 3, below n. */
export function expanderDegree(n: number): number {
  return Math.max(3, Math.min(n - 1, Math.round(2 * Math.log(n))));
}
