/**
 * The agent's tests again with the native splice engine moving the octets (what `taas-agent`
 * picks where the addon loads): the signal's leftovers as head, half-close, resets and the
 * passed-on header go through the hand-over of descriptors.
 */
import { engineAvailability } from '../../src/relay/engines/select.js';
import { SpliceEngine } from '../../src/relay/engines/splice.js';
import { useAgentEngine } from './engine-choice.js';

if (!engineAvailability().splice) throw new Error(`the splice engine does not load here: ${engineAvailability().why}`);
useAgentEngine(() => new SpliceEngine({ threads: 1 }));
await import('./agent.test.js');
