// Installed before any test module loads libp2p (Node 20 lacks Promise.withResolvers).
import '../src/util/polyfills.ts';
