/**
 * The pairing signal (issue 13): a responder that registered with a TAAS-Cookie (an agent of
 * this project) is sent a PROXY protocol header before the mobile client's first octet, so it
 * learns that a client has arrived and who it is. An original-protocol (cookieless) responder
 * is never sent one: it sees the client's octets exactly as with the original server.
 *
 * The header is written on the responder's Node socket just before the pairing is handed to
 * the engine; both engines deliver what JavaScript queued first (the stream engine writes after
 * it, the splice engine waits for queued writes before taking the descriptor).
 */
import type net from 'node:net';
import { formatProxyHeader, type ProxyVersion } from '../protocol/index.js';

/** Responders that presented a cookie; a WeakSet, so it never outlives the socket. */
const cookieResponders = new WeakSet<net.Socket>();

/** Marks an accepted responder as cookie-speaking: it gets the signal when paired. */
export function expectsPairingSignal(socket: net.Socket): void {
  cookieResponders.add(socket);
}

/** Writes the header to a cookie-speaking responder; does nothing for any other. */
export function sendPairingSignal(version: ProxyVersion, client: net.Socket, responder: net.Socket): void {
  if (!cookieResponders.has(responder)) return;
  responder.write(
    formatProxyHeader(version, {
      clientAddress: client.remoteAddress ?? '',
      clientPort: client.remotePort ?? 0,
      relayAddress: client.localAddress ?? '',
      relayPort: client.localPort ?? 0,
    }),
  );
}
