/**
 * What every part of the relay shares: the events the Relay emits (RelayEvents, re-exported by
 * relay.ts) and RelayCore, the few facts each part reads — the config of the moment, whether
 * the relay has closed, the logger and the event sink. A class of its own so that the parts
 * (responders, clients, pairing, fixed ports) depend on it and never on the Relay facade.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ConfigView } from '../config/view.js';
import type { PairingRecord } from '../store/types.js';
import type { RefusalWhy } from './registration.js';
import type { AdmissionPoint, PolicyRefusal } from './admission.js';

export type ClientRefusal = 'no-responder' | 'queue-full' | 'timeout' | 'conn-limit' | 'closing' | PolicyRefusal;

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
  /** A mobile client refused by its label's traffic policy, at the registrar or on a relay port. */
  'policy-refused': { label: string; why: PolicyRefusal; at: AdmissionPoint };
  /** Established pairings closed because the label's policy now denies their client's address. */
  'policy-closed': { label: string; count: number };
}

export type RelayEmit = <K extends keyof RelayEvents>(event: K, payload: RelayEvents[K]) => void;

export class RelayCore {
  private isClosed = false;

  constructor(
    private readonly view: ConfigView,
    readonly logger: Logger,
    /** The Relay's emit: a listener that throws is logged, never thrown back here. */
    readonly emit: RelayEmit,
  ) {}

  /** The config of the moment, from the daemon's live view: read at each use, never kept (a SIGHUP reload replaces it). */
  get config(): Readonly<Config> {
    return this.view.current;
  }

  /** The relay has closed: nothing new is taken. */
  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    this.isClosed = true;
  }

  /** A hand-over that failed before the new daemon took ownership: this relay serves on. */
  reopen(): void {
    this.isClosed = false;
  }
}
