/**
 * A live peer whose key was burnt rejoins the masking with a fresh one, without a restart (docs/privacy.md "Burn notices").
 * A holder that released a share of this peer's key told it so (node.ts, `secure-burnt`): a receiver may now rebuild the key, so
 * the node masks nothing with it any more. Then the same path as a restarted peer (rejoin.ts): a RejoinSession draws a fresh
 * X25519 key, announces it with r0 = the current round + lead, learns every key in force from the answers and directories, deals
 * shares of the new secret to its holder set, commits, and the node masks again from `sendsFrom` (decided by the session through
 * `onDecided`, which the caller wires to `node.sendsFrom`). What differs from a restart: the shares this peer holds for others are
 * kept (their dealers' keys did not change; they are released again from this peer's r0, sealed with its new key, when the others
 * know that key), and so are the secrets of others it rebuilt. Until r0 it only receives; a round there with a sender missing is
 * not mixed (it neither asks for shares nor releases them: receivers would seal to, and open with, keys not agreed yet).
 */
import type { AveragingTransport } from '../types.ts';
import type { SecureDpsgdNode } from './node.ts';
import type { PeerSecureSession } from './peer-session.ts';
import { RejoinSession, type RejoinOptions, type RekeyResponder } from './rejoin.ts';

/**
 * Starts the rejoin of `node` (whose key `old` was burnt) on `wire`, the transport under the responder (the replies reach the new
 * session through `responder`). Returns the new session (its counters and progress; `close()` at the run's end).
 */
export function rejoinAfterBurn(node: SecureDpsgdNode, responder: RekeyResponder, old: PeerSecureSession, wire: AveragingTransport, o: RejoinOptions): RejoinSession {
  const session = new RejoinSession(o);
  session.wrap(wire);
  node.useSession(session);   // registers this peer in the new session: a fresh key pair from the OS CSPRNG
  const kept = old.peers.get(wire.self)?.held;
  const held = session.peers.get(wire.self)!.held;
  for (const [dealer, share] of kept ?? []) held.set(dealer, share);
  responder.rebind(session);
  // a rejoin's session whose key is now burnt in turn: its re-sends (announcement, commit) stop; the new one replaces it
  if (old instanceof RejoinSession) old.close();
  // resolves at once (rejoin.ts): the announcement and what follows run on the transport's timers; it rejects only when this
  // peer is not registered, which useSession just did (never an unhandled rejection in a daemon)
  session.setup().catch(() => undefined);
  return session;
}
