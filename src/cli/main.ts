import '../util/polyfills.ts';
import { Command } from 'commander';
import { isCohortError } from '../util/errors.ts';
import { registerCommands } from './commands/index.ts';

/**
 * `cohort` — thin commands: parse, call a layer below, print (human or --json).
 * Each command lives in its own module under ./commands and is registered in ./commands/index.ts.
 */
const program = new Command()
  .name('cohort')
  .description('Peer-to-peer federated training for hospitals, with no central server.')
  .version('0.1.0')
  .showHelpAfterError();

await registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (isCohortError(e)) {
    process.stderr.write(`cohort: ${e.describe()}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`cohort: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}
