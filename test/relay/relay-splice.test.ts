/**
 * The Relay's pairing tests again, with the native splice engine behind it (the daemon's
 * default where the addon is built): heads, half-close, waiting clients, liveness and load go
 * through the hand-over of descriptors to the engine.
 */
import { SpliceEngine } from '../../src/relay/engines/splice.js';
import { useEngine } from './relay-harness.js';

useEngine(() => new SpliceEngine({ threads: 1 }));
await import('./client-port.test.js');
await import('./pool.test.js');
await import('./lifecycle.test.js');
