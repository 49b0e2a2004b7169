// Two peers started from the files `cohort init` and `cohort roster` write, with a pre-shared key: the path a hospital takes.
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerInit } from '../../src/cli/commands/init.ts';
import { registerRoster } from '../../src/cli/commands/roster.ts';
import { loadIdentity } from '../../src/net/identity.ts';
import { startNodeFromConfig } from '../../src/net/node.ts';

const run = async (...argv: string[]) => {
  const program = new Command().exitOverride();
  registerInit(program);
  registerRoster(program);
  await program.parseAsync(['node', 'cohort', ...argv]);
};

describe('peers from config files', () => {
  it('start, find each other by bootstrap over pnet and exchange gossip; a peer off the roster is refused at start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-cfg-'));
    const listen = ['--listen', '/ip4/127.0.0.1/tcp/0'];
    await run('init', '--dir', join(dir, 'a'), '--name', 'A', '--consortium', 'c9', '--psk', ...listen);
    await run('init', '--dir', join(dir, 'b'), '--name', 'B', '--consortium', 'c9', ...listen);
    await run('init', '--dir', join(dir, 'x'), '--name', 'X', '--consortium', 'c9', ...listen);
    const rf = join(dir, 'roster.json');
    await run('roster', 'create', '--file', rf, '--consortium', 'c9');
    for (const [p, roles] of [['a', 'admin'], ['b', 'data-provider']] as const) {
      await run('roster', 'add', '--file', rf, '--peer', loadIdentity(join(dir, p, 'peer.key')).peerId.toString(), '--name', p, '--roles', roles);
    }
    await run('roster', 'sign', '--file', rf, '--key', join(dir, 'a', 'peer.key'));
    // B joins A's private network: same swarm.key, pskFile in its config
    copyFileSync(join(dir, 'a', 'swarm.key'), join(dir, 'b', 'swarm.key'));
    const cfgB = JSON.parse(readFileSync(join(dir, 'b', 'cohort.json'), 'utf8')) as { net: Record<string, unknown> };
    cfgB.net['pskFile'] = 'swarm.key';
    writeFileSync(join(dir, 'b', 'cohort.json'), JSON.stringify(cfgB));
    for (const p of ['a', 'b', 'x']) copyFileSync(rf, join(dir, p, 'roster.json'));

    await expect(startNodeFromConfig(join(dir, 'x', 'cohort.json'))).rejects.toMatchObject({ code: 'ROSTER_NOT_MEMBER' });
    const a = await startNodeFromConfig(join(dir, 'a', 'cohort.json'));
    cfgB.net['bootstrap'] = [a.multiaddrs()[0]!]; // B finds A by its bootstrap list, no manual dial
    writeFileSync(join(dir, 'b', 'cohort.json'), JSON.stringify(cfgB));
    const b = await startNodeFromConfig(join(dir, 'b', 'cohort.json'));
    try {
      const until = Date.now() + 10_000;
      while (b.libp2p.getConnections(a.peerId).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(b.libp2p.getConnections(a.peerId).length).toBeGreaterThan(0);
      expect(a.roster.current.roles(b.peerId)).toEqual(['data-provider']);
      const got: unknown[] = [];
      a.pubsub.subscribe(a.topics.catalogue, (m) => { got.push(m.body); });
      b.pubsub.subscribe(b.topics.catalogue, () => undefined);
      const end = Date.now() + 10_000;
      let recipients = 0;
      while (recipients === 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        recipients = (await b.pubsub.publish(b.topics.catalogue, { type: 'catalogue', body: { datasetId: 'ct-1', kind: 'nifti' } })).recipients;
      }
      while (got.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(got[0]).toEqual({ datasetId: 'ct-1', kind: 'nifti' });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
