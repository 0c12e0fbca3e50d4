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
