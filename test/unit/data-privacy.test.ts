// Privacy: a peer tells others about its data only through catalogue entries. Two real libp2p peers on loopback; the data holder
// publishes the catalogue gossip of a registered synthetic site; the other records every gossip message it receives. Nothing
// that identifies or reproduces the data (paths, subject ids, content hash, file bytes, label values per subject) arrives, and
// everything the holder sends through Cohort's protocols is one message of a few hundred bytes, against megabytes of data.
import '../../src/util/polyfills.ts';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectAll, makeConsortium, startLocalNodes, waitForMesh } from '../../src/net/local-consortium.ts';
import type { CohortNode } from '../../src/net/node.ts';
import { catalogueGossipBody } from '../../src/data/catalogue.ts';
import { describeDataset } from '../../src/data/register.ts';
import { writeSynthSite } from '../../src/data/synth.ts';

const files = (d: string): string[] => readdirSync(d).flatMap((e) => (statSync(join(d, e)).isDirectory() ? files(join(d, e)) : [join(d, e)]));

let nodes: CohortNode[] = [];
afterAll(async () => { await Promise.all(nodes.map((n) => n.stop())); });

describe('no dataset bytes cross the network', () => {
  it('the catalogue gossip carries counts and modalities only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-privacy-'));
    writeSynthSite(dir, { site: 4, cases: 14, twoD: true });
    const record = describeDataset(dir, { id: 'site4', label: 'outcome', tags: ['synthetic'] });
    const c = await makeConsortium(2, 7, { consortium: 'privacy' });
    nodes = await startLocalNodes(c);
    const [holder, other] = nodes;
    await connectAll(nodes);
    const topic = holder.topics.catalogue;
    const received: Uint8Array[] = [];
    other.libp2p.services.pubsub.addEventListener('message', (e) => { received.push(e.detail.data); });
    other.pubsub.subscribe(topic, () => {});
    holder.pubsub.subscribe(topic, () => {});
    await waitForMesh(nodes, topic);
    const sent = await holder.pubsub.publish(topic, { type: 'catalogue', body: catalogueGossipBody(record) });
    expect(sent.recipients).toBe(1);
    const deadline = Date.now() + 5000;
    while (!received.some((d) => new TextDecoder().decode(d).includes('"catalogue"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

    const text = received.map((d) => new TextDecoder().decode(d)).join('\n');
    const msg = JSON.parse(text.split('\n').find((t) => t.includes('"catalogue"')) as string);
    expect(msg.body).toEqual({ datasetId: 'site4', kind: 'folder', summary: { modalities: ['CT', 'PT'], samples: 10, labelBalance: msg.body.summary.labelBalance, tags: ['synthetic'] } });
    for (const v of Object.values(msg.body.summary.labelBalance as Record<string, number | string>)) expect(v === '<10' || (typeof v === 'number' && v >= 10)).toBe(true);
    // nothing identifying or reproducing the data
    expect(text).not.toContain(dir);
    expect(text).not.toContain(record.contentHash);
    expect(text).not.toMatch(/s4-00\d\d/);
    const all = files(dir);
    const dataBytes = all.reduce((a, f) => a + statSync(f).size, 0);
    for (const f of all.filter((x) => x.endsWith('.csv'))) {
      for (const line of readFileSync(f, 'utf8').split('\n').slice(1).filter(Boolean)) expect(text).not.toContain(line);
    }
    // everything the holder sent through Cohort's protocols (gossip of every type, model exchange): the catalogue message only
    const out = Object.values(holder.metrics().byProtocol).reduce((a, t) => a + t.bytesOut, 0);
    expect(Object.keys(holder.metrics().byProtocol).filter((k) => holder.metrics().byProtocol[k].bytesOut > 0)).toEqual(["gossip:catalogue"]);
    expect(out).toBeGreaterThan(0);
    expect(out).toBeLessThan(2048);
    expect(dataBytes).toBeGreaterThan(50 * out);
  });
});
