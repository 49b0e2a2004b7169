#!/usr/bin/env node
// Entry point for `npx cohort`: runs the compiled JavaScript in dist/ (built by `npm ci` through the `prepare` script, or by
// `npm run build`). The TypeScript sources run with `npm run cohort -- ...` (through tsx), as the tests do.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'cohort: the compiled command line is missing (dist/cli/main.js).\n'
    + '  hint: run `npm run build` in the Cohort folder (`npm ci` runs it), or run the sources with `npm run cohort -- ARGS`\n',
  );
  process.exit(2);
}
await import(main.href);
