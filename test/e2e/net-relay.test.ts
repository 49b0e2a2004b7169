// Circuit relay v2 between members: a peer that only the relay can reach (as behind NAT) receives a model through it.
import { describe, expect, it } from 'vitest';
import { makeConsortium, startLocalNodes } from '../../src/net/local-consortium.ts';
import { makeHeader, sha256Hex } from '../../src/net/model-exchange.ts';

describe('circuit relay', () => {
  it('carries a model to a member reachable only through a relaying member', async () => {
    const c = await makeConsortium(3, 31);
    const [relay] = await startLocalNodes(c, { only: [0], net: { relayServer: true } });
    const [hidden] = await startLocalNodes(c, { only: [1], net: { listen: ['/ip4/127.0.0.1/tcp/0', '/p2p-circuit'] } });
    const [sender] = await startLocalNodes(c, { only: [2] });
    try {
      await hidden!.dial(relay!.multiaddrs()[0]!);
      const end = Date.now() + 15_000;
      while (!hidden!.multiaddrs().some((a) => a.includes('/p2p-circuit')) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const circuit = `${relay!.multiaddrs()[0]!}/p2p-circuit/p2p/${hidden!.peerId.toString()}`;
      await sender!.dial(circuit);
      const conn = sender!.libp2p.getConnections(hidden!.peerId)[0]!;
      expect(conn.remoteAddr.toString()).toContain('/p2p-circuit');
      let hash = '';
      hidden!.models.onModel({ receive: (_h, b) => { hash = sha256Hex(b); } });
      const bytes = new Uint8Array(4 * 1024 * 1024).map((_, i) => i % 253);
      const h = makeHeader({ scenarioId: 'r', round: 1, sender: sender!.peerId.toString(), layoutHash: 'L', dtype: 'float32' }, bytes);
      expect(await sender!.models.send(hidden!.peerId, h, bytes)).toEqual({ ok: true });
      expect(hash).toBe(h.sha256);
    } finally {
      await Promise.all([relay, hidden, sender].map((n) => n!.stop()));
    }
  });
});
