/** The engine contract against the native splice engine, unchanged. */
import { SpliceEngine } from '../../src/relay/engines/splice.js';
import { runEngineContract } from './engine-contract.js';

runEngineContract('splice', () => new SpliceEngine());
