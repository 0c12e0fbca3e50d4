/**
 * What every part of the relay shares: the events it emits (RelayEvents, re-exported by
 * relay.ts) and RelayCore, the few facts each part reads from the Relay — the config of the
 * moment, whether it is closed, the logger and the event sink. Separate so that the parts
 * (responders, clients, pairing, fixed ports, revocation) depend on this narrow view and never
 * on the Relay class itself.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { PairingRecord } from '../store/types.js';
import type { RefusalWhy } from './registration.js';

export type ClientRefusal = 'no-responder' | 'queue-full' | 'timeout' | 'conn-limit' | 'closing';

/** Payloads of the events the Relay emits. */
export interface RelayEvents {
  allocated: { id: string; label: string; port: number; remoteAddress: string };
  'responder-ready': { label: string };
  'responder-refused': { label: string; port: number; remoteAddress: string; why: RefusalWhy };
  /** An idle responder found dead when it was about to be paired, and replaced (issue 7). */
  'responder-dead': { label: string };
  'registration-expired': { label: string; port: number };
  paired: { label: string; waitMs: number };
  'pool-empty': { label: string };
  'pairing-end': PairingRecord;
  'client-refused': { label: string; why: ClientRefusal };
}

export interface RelayCore {
  /** Read at each use, never kept: a reload (SIGHUP) replaces it. */
  readonly config: Readonly<Config>;
  readonly closed: boolean;
  readonly logger: Logger;
  /** The Relay's emit: a listener that throws is logged, never thrown back here. */
  emit<K extends keyof RelayEvents>(event: K, payload: RelayEvents[K]): void;
}
