/**
 * Connection gater: only roster members connect, inbound and outbound, directly or through a relay.
 * The check runs after the Noise handshake (the remote peer ID is proven then), so an outsider's TCP dial may "succeed" briefly
 * before libp2p aborts it: admission, not a successful dial, is what counts.
 */
import type { ConnectionGater, PeerId } from '@libp2p/interface';
import { logger } from '../util/log.ts';
import type { NetMetrics } from './metrics.ts';
import type { Roster } from './roster.ts';

const log = logger('net:gater');

/** `onDeny` hears every refusal (the daemon counts and audits them: src/peer/refusals.ts, channel 'connection'). */
export function rosterGater(roster: () => Roster, metrics?: NetMetrics, onDeny?: (peer: string, where: string) => void): ConnectionGater {
  const deny = (peer: PeerId, where: string): boolean => {
    if (roster().has(peer)) return false;
    metrics && metrics.connectionsDenied++;
    metrics?.reject('gater', where);
    log.info({ peer: peer.toString(), where }, 'connection denied: not on the roster');
    onDeny?.(peer.toString(), where);
    return true;
  };
  return {
    denyDialPeer: (peer) => deny(peer, 'dial'),
    denyInboundEncryptedConnection: (peer) => deny(peer, 'inbound'),
    denyOutboundEncryptedConnection: (peer) => deny(peer, 'outbound'),
    denyInboundRelayReservation: (peer) => deny(peer, 'relay-reservation'),
    denyOutboundRelayedConnection: (src, dst) => deny(src, 'relay-source') || deny(dst, 'relay-destination'),
    denyInboundRelayedConnection: (relay, remote) => deny(relay, 'relay') || deny(remote, 'relayed-inbound'),
  };
}
