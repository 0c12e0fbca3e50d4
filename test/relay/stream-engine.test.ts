/** The engine contract against the JavaScript stream engine. */
import { StreamEngine } from '../../src/relay/engines/stream.js';
import { runEngineContract } from './engine-contract.js';

runEngineContract('stream', () => new StreamEngine());
