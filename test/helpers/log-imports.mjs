// `node --import ./test/helpers/log-imports.mjs ...`: appends every resolved module URL to the file named by COHORT_IMPORT_LOG.
// Used by test/unit/cli-commands.test.ts to check which packages a command loads.
import { register } from 'node:module';

register(new URL('./log-imports-hooks.mjs', import.meta.url), { data: { file: process.env.COHORT_IMPORT_LOG } });
