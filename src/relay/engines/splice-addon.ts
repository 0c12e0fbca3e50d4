/**
 * Loading the native addon of the splice engine (native/addon.c, built by node-gyp into
 * build/Release/taas_splice.node) once. Its socket helper is used through socket-options.ts.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeStats {
  pairings: number;
  pipesInUse: number;
  pipesPooled: number;
  pipeSize: number;
  threads: number;
}

export type NativeEngine = object;
/** A native token bucket (native/bucket.h), shared by the pairings given it. */
export type NativeBucket = object;
export type OnDone = (id: number, up: number, down: number, reason: number, err: string | undefined) => void;

/** The addon's exports (native/addon.c). */
export interface SpliceAddon {
  create(onDone: OnDone, threads: number, pipeSize: number, poolMax: number): NativeEngine;
  pair(e: NativeEngine, id: number, fdClient: number, fdResponder: number, headClient: Buffer | null, headResponder: Buffer | null, idleMs: number, bucketUp?: NativeBucket | null, bucketDown?: NativeBucket | null): void;
  bucket(rate: number, burst: number): NativeBucket;
  close(e: NativeEngine, id: number, reason: number): void;
  closeAll(e: NativeEngine, reason: number): void;
  ref(e: NativeEngine, on: boolean): void;
  stats(e: NativeEngine): NativeStats;
  shutdown(e: NativeEngine): void;
  setUserTimeout(fd: number, ms: number): void;
  /** The hand-over: every pairing that is not half-closed, stopped; absent in an older build. */
  detachAll?(e: NativeEngine): Array<{ id: number; fdClient: number; fdResponder: number; up: number; down: number; pendingUp: Buffer | null; pendingDown: Buffer | null }>;
  /** Descriptor passing for the hand-over (native/fdpass.c); absent in an addon built before it. */
  sendFrame?(sock: number, body: Buffer, fds: number[], timeoutMs: number): void;
  recvFrame?(sock: number, timeoutMs: number): { body: Buffer; fds: number[] };
  peerCred?(sock: number): { pid: number; uid: number; gid: number };
  dupFd?(fd: number): number;
  closeFd?(fd: number): void;
  sdNotify?(socketPath: string, message: string): void;
}

/** build/Release/taas_splice.node from the package root (same depth from src/ and dist/). */
export const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'Release', 'taas_splice.node');

let loaded: { addon?: SpliceAddon; why?: string } | undefined;

/** Loads the addon once; `why` says in one line why it cannot be used. */
export function loadAddon(): { addon?: SpliceAddon; why?: string } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') return (loaded = { why: `splice(2) is Linux-only (platform ${process.platform})` });
  try {
    const req = createRequire(import.meta.url);
    loaded = { addon: req(ADDON_PATH) as SpliceAddon };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    loaded = {
      why: code === 'MODULE_NOT_FOUND'
        ? `native addon not built (${ADDON_PATH} missing; run npm run build:native)`
        : `native addon failed to load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
    };
  }
  return loaded;
}
