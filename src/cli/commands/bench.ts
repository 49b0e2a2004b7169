import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CohortError } from '../../util/errors.ts';
import { importTypeScript } from '../load-ts.ts';

/** The part of bench/suite.ts this command uses (not imported: bench/ stays outside the compiled CLI). */
interface BenchSuite { run(opts: { verbose: boolean; quick: boolean; resultsDir: string }): Promise<{ suite: string; rows: ReadonlyArray<Record<string, unknown>> }> }
interface SuiteModule { RESULTS_DIR: string; writeResult(result: { suite: string; rows: ReadonlyArray<Record<string, unknown>> }, resultsDir?: string): string }

// bench/ is three levels up from src/cli/commands/ and from dist/cli/commands/ alike; its suites are TypeScript, loaded on demand
const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench');

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
    .option('--out <dir>', 'write SUITE.json and the plots into DIR instead of bench/results (keeps the committed results)')
    .action(async (suite: string, opts: { json?: boolean; quick?: boolean; out?: string }) => {
      const file = join(BENCH_DIR, `${suite}.ts`);
      if (!/^[a-z0-9-]+$/.test(suite) || !existsSync(file)) {
        throw new CohortError('BENCH_UNKNOWN_SUITE', `no benchmark suite named "${suite}"`, `available: ${availableSuites().join(', ')}`);
      }
      const { RESULTS_DIR, writeResult } = await importTypeScript<SuiteModule>(join(BENCH_DIR, 'suite.ts'));
      const mod = await importTypeScript<{ default: BenchSuite }>(file);
      const resultsDir = opts.out ?? RESULTS_DIR;
      const result = await mod.default.run({ verbose: !opts.json, quick: Boolean(opts.quick), resultsDir });
      const path = writeResult(result, resultsDir);
      if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
      else {
        console.table(result.rows);
        process.stderr.write(`wrote ${path}\n`);
      }
    });
}
