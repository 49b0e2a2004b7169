import cliProgress from 'cli-progress';

/**
 * A progress bar on stderr when a person is watching (TTY and not --json); silent otherwise, so logs and JSON stay clean.
 */
export interface Progress {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(opts: { total: number; label: string; enabled: boolean; fields?: string }): Progress {
  if (!opts.enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${opts.label} [{bar}] {value}/{total} ${opts.fields ?? ''}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(opts.total, 0);
  return {
    update: (value, payload) => bar.update(value, payload),
    stop: () => bar.stop(),
  };
}
