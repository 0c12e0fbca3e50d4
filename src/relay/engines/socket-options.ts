/**
 * Socket options Node has no API for, set on sockets the relay holds whichever engine relays
 * their pairings. They go through the native addon (native/addon.c) where it is built; where it
 * is not, they are skipped (false). The one export of engines/ that the rest of the relay uses
 * besides the engines themselves: nothing outside engines/ imports an engine's own files.
 */
import type net from 'node:net';
import { loadAddon } from './splice-addon.js';

/**
 * TCP_USER_TIMEOUT on a connected socket: e.g. on idle responders, so that a hidden server that
 * vanished is found when keepalive probes or data go unacknowledged. False where the addon is
 * unavailable (decided once: the addon is loaded once) or the socket has no descriptor.
 */
export function setTcpUserTimeout(socket: net.Socket, ms: number): boolean {
  const { addon } = loadAddon();
  const fd = (socket as net.Socket & { _handle?: { fd?: number } | null })._handle?.fd;
  if (!addon || typeof fd !== 'number' || fd < 0) return false;
  try {
    addon.setUserTimeout(fd, Math.max(0, Math.round(ms)));
    return true;
  } catch {
    return false;
  }
}

/** Descriptor passing over a Unix socket (the hand-over to a new daemon), where the addon has it. */
export interface DescriptorPassing {
  sendFrame(sock: number, body: Buffer, fds: number[], timeoutMs: number): void;
  recvFrame(sock: number, timeoutMs: number): { body: Buffer; fds: number[] };
  peerCred(sock: number): { pid: number; uid: number; gid: number };
  dupFd(fd: number): number;
  closeFd(fd: number): void;
  /** One datagram to systemd's NOTIFY_SOCKET (absent in an older addon). */
  sdNotify?(socketPath: string, message: string): void;
}

/** The addon's descriptor passing, or why there is none (one line). */
export function descriptorPassing(): { io?: DescriptorPassing; why?: string } {
  const { addon, why } = loadAddon();
  if (!addon) return { why: why ?? 'native addon unavailable' };
  const { sendFrame, recvFrame, peerCred, dupFd, closeFd } = addon;
  if (!sendFrame || !recvFrame || !peerCred || !dupFd || !closeFd) return { why: 'the native addon was built without descriptor passing (run npm run build:native)' };
  return { io: { sendFrame, recvFrame, peerCred, dupFd, closeFd, sdNotify: addon.sdNotify } };
}

/** Taking a socket's descriptor and unread octets from libuv (the hand-over to a new daemon uses it too). */
export { takeOver } from './splice-handover.js';
