/**
 * The hand-over format (issue 16): what a running daemon sends the daemon that replaces it over
 * the Unix socket `<dataDir>/handover.sock`. Frames are an 8-octet header (body length and
 * descriptor count, u32 big-endian) and a JSON body, descriptors riding as SCM_RIGHTS on the
 * header (native/fdpass.c writes and reads them); this module owns the bodies.
 *
 * A session: new → old `hello` (its format version); old → new `welcome` or `refuse`; old → new
 * zero or more `fds` frames (descriptors only, at most FDS_PER_FRAME each) and one `state`
 * naming every descriptor by its index in the order received; new → old `taken` (it owns them
 * all now) or `failed`. A different `version` is refused: the two builds fall back to a drain.
 */
import { TaasError } from '../errors.js';

/** Bumped whenever a body's meaning changes; both sides must speak the same one. */
export const HANDOVER_VERSION = 1;

/** Below the kernel's SCM_MAX_FD (253). */
export const FDS_PER_FRAME = 250;

/** The socket's name in the data dir. */
export const HANDOVER_SOCKET = 'handover.sock';

/** A listener of the daemon itself (registrar, admin, and what other parts add), by name. */
export interface ListenerState {
  name: string;
  fd: number;
}

/** A relay port with its label: a fixed client port or a range client port. */
export interface PortState {
  label: string;
  port: number;
  fd: number;
}

/** A registration whose responder has not connected yet: its one-shot port and its terms. */
export interface RegistrationState {
  id: string;
  label: string;
  remoteAddress: string;
  cookie: string;
  port: number;
  /** Its one-shot port's descriptor; -1 for a shared registration (port 0: it holds none). */
  fd: number;
  /** ms left of its registrationTimeout. */
  leftMs: number;
  /** Answered with the shared port (sharedPort: true): its hidden server's cookie line comes there. */
  shared?: boolean;
}

/** A socket held before pairing: `head` is what the relay read from it and still holds. */
export interface HeldState {
  label: string;
  fd: number;
  head?: string; // base64
  /** An idle responder: the entry ID it registered with (for revocation). */
  id?: string;
  /** An idle responder that presented a cookie: it is sent the pairing signal (PROXY header) when paired. */
  signal?: boolean;
  /** A waiting client: when it arrived and when its wait ends (ms since the epoch). */
  arrived?: number;
  deadline?: number;
}

/** One side of an established pairing. */
export interface PairSideState {
  fd: number;
  addr: string;
  port: number;
  /** Counted for maxConnsPerAddress until the pairing ends. */
  counted: boolean;
}

/** An established pairing: its record so far and the octets in flight each way. */
export interface PairingState {
  label: string;
  cid: string;
  start: number;
  path: string | null;
  client: PairSideState;
  responder: PairSideState;
  bytesUp: number;
  bytesDown: number;
  /** Octets read from the client and not yet written to the responder (base64), and back. */
  pendingUp?: string;
  pendingDown?: string;
}

export interface RelayState {
  fixedPorts: PortState[];
  clientPorts: PortState[];
  registrations: RegistrationState[];
  idle: HeldState[];
  waiting: HeldState[];
  pairings: PairingState[];
}

export type HandoverMessage =
  | { t: 'hello'; version: number; pid: number }
  | { t: 'welcome'; version: number; pid: number }
  | { t: 'refuse'; version: number; why: string }
  | { t: 'fds'; n: number }
  | { t: 'state'; listeners: ListenerState[]; relay: RelayState; fdCount: number }
  | { t: 'taken' }
  | { t: 'failed'; why: string };

export function encodeHandover(m: HandoverMessage): Buffer {
  return Buffer.from(JSON.stringify(m), 'utf8');
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

function bad(what: string): never {
  throw new TaasError('TAAS_HANDOVER_FAILED', `hand-over message malformed: ${what}`);
}

function checkFd(v: unknown, fdCount: number, where: string): void {
  if (!isNum(v) || !Number.isInteger(v) || v < 0 || v >= fdCount) bad(`${where}: descriptor index out of range`);
}

function checkList(v: unknown, where: string, each: (x: Record<string, unknown>) => void): void {
  if (!Array.isArray(v)) bad(`${where} is not a list`);
  for (const x of v) {
    if (!isObj(x)) bad(`${where}: not an object`);
    each(x);
  }
}

/** Parses one body; a malformed one is a TaasError TAAS_HANDOVER_FAILED naming what is wrong. */
export function decodeHandover(body: Buffer): HandoverMessage {
  let m: unknown;
  try {
    m = JSON.parse(body.toString('utf8'));
  } catch {
    bad('not JSON');
  }
  if (!isObj(m) || !isStr(m.t)) bad('no type');
  switch (m.t) {
    case 'hello':
    case 'welcome':
      if (!isNum(m.version) || !isNum(m.pid)) bad(`${m.t} without version or pid`);
      break;
    case 'refuse':
      if (!isNum(m.version) || !isStr(m.why)) bad('refuse without version or reason');
      break;
    case 'fds':
      if (!isNum(m.n)) bad('fds without count');
      break;
    case 'failed':
      if (!isStr(m.why)) bad('failed without reason');
      break;
    case 'taken':
      break;
    case 'state':
      checkState(m);
      break;
    default:
      bad(`unknown type ${JSON.stringify(m.t).slice(0, 40)}`);
  }
  return m as unknown as HandoverMessage;
}

function checkState(m: Record<string, unknown>): void {
  const n = m.fdCount;
  if (!isNum(n)) bad('state without fdCount');
  checkList(m.listeners, 'listeners', (x) => {
    if (!isStr(x.name)) bad('listener without name');
    checkFd(x.fd, n, 'listener');
  });
  const r = m.relay;
  if (!isObj(r)) bad('state without relay');
  for (const k of ['fixedPorts', 'clientPorts'] as const) {
    checkList(r[k], k, (x) => {
      if (!isStr(x.label) || !isNum(x.port)) bad(`${k}: label or port missing`);
      checkFd(x.fd, n, k);
    });
  }
  checkList(r.registrations, 'registrations', (x) => {
    if (!isStr(x.id) || !isStr(x.label) || !isStr(x.remoteAddress) || !isStr(x.cookie) || !isNum(x.port) || !isNum(x.leftMs)) bad('registration incomplete');
    if (x.shared !== undefined && typeof x.shared !== 'boolean') bad('registration: shared not a boolean');
    if (x.shared === true) {
      if (x.fd !== -1) bad('shared registration with a descriptor');
    } else checkFd(x.fd, n, 'registration');
  });
  for (const k of ['idle', 'waiting'] as const) {
    checkList(r[k], k, (x) => {
      if (!isStr(x.label)) bad(`${k}: no label`);
      if (x.head !== undefined && !isStr(x.head)) bad(`${k}: head not base64`);
      if (x.signal !== undefined && typeof x.signal !== 'boolean') bad(`${k}: signal not a boolean`);
      checkFd(x.fd, n, k);
    });
  }
  checkList(r.pairings, 'pairings', (x) => {
    if (!isStr(x.label) || !isStr(x.cid) || !isNum(x.start) || !isNum(x.bytesUp) || !isNum(x.bytesDown)) bad('pairing incomplete');
    for (const side of ['client', 'responder'] as const) {
      const s = x[side];
      if (!isObj(s) || !isStr(s.addr) || !isNum(s.port)) bad(`pairing ${side} incomplete`);
      checkFd(s.fd, n, `pairing ${side}`);
    }
  });
}
