import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A benchmark suite: measures side by side in one run (medians, ratios) and returns rows.
 * `cohort bench SUITE` runs `bench/SUITE.ts`, whose default export is a BenchSuite, and writes bench/results/SUITE.json.
 */
export interface BenchOptions {
  /** Print progress for a person (false with --json). */
  readonly verbose: boolean;
  /** A short run (fewer repetitions) for smoke checks; figures from it are not for publication. */
  readonly quick: boolean;
  /** Where plots and extra files go (bench/results). */
  readonly resultsDir: string;
}

export interface BenchResult {
  readonly suite: string;
  readonly rows: ReadonlyArray<Record<string, unknown>>;
  readonly [extra: string]: unknown;
}

export interface BenchSuite {
  readonly name: string;
  readonly description: string;
  run(opts: BenchOptions): Promise<BenchResult>;
}

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

export function writeResult(result: BenchResult, resultsDir = RESULTS_DIR): string {
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, `${result.suite}.json`);
  const stamped = { ...result, measured_at: new Date().toISOString(), host: hostSummary() };
  writeFileSync(path, JSON.stringify(stamped, null, 2) + '\n');
  return path;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function hostSummary(): Record<string, unknown> {
  return { node: process.version, platform: process.platform, arch: process.arch };
}
