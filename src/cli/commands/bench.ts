import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CohortError } from '../../util/errors.ts';
import { RESULTS_DIR, writeResult, type BenchSuite } from '../../../bench/suite.ts';

const BENCH_DIR = join(RESULTS_DIR, '..');

function availableSuites(): string[] {
  return readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && f !== 'suite.ts')
    .map((f) => f.slice(0, -3))
    .sort();
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('run a benchmark suite side by side in one run; writes bench/results/SUITE.json')
    .argument('<suite>', 'suite name (train, net, averaging, data, ...)')
    .option('--json', 'print the result as JSON on stdout')
    .option('--quick', 'a short smoke run (not for publication)')
    .action(async (suite: string, opts: { json?: boolean; quick?: boolean }) => {
      const file = join(BENCH_DIR, `${suite}.ts`);
      if (!/^[a-z0-9-]+$/.test(suite) || !existsSync(file)) {
        throw new CohortError('BENCH_UNKNOWN_SUITE', `no benchmark suite named "${suite}"`, `available: ${availableSuites().join(', ')}`);
      }
      const mod = (await import(file)) as { default: BenchSuite };
      const result = await mod.default.run({ verbose: !opts.json, quick: Boolean(opts.quick), resultsDir: RESULTS_DIR });
      const path = writeResult(result);
      if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
      else {
        console.table(result.rows);
        process.stderr.write(`wrote ${path}\n`);
      }
    });
}
