import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * One logger for the whole process. Logs go to stderr so that `--json` output on stdout stays machine-readable.
 * Level from COHORT_LOG_LEVEL (default `info`; tests set `silent` or `warn`).
 */
let root: Logger | undefined;

export function rootLogger(): Logger {
  root ??= pino(
    { level: process.env.COHORT_LOG_LEVEL ?? 'info', base: undefined },
    pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

/** A child logger for one module, e.g. `logger('engine:runner')`. */
export function logger(component: string): Logger {
  return rootLogger().child({ component });
}
