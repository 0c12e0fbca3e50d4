/**
 * The registrar's request handling, routed on Host:
 * - `namedRegistrar`: PUT /register/LABEL (hidden servers), GET /pairings/LABEL;
 * - `LABEL.<namedServers>`: a mobile client, answered with a 307 to the label's client port;
 * - anything else: 404.
 */
import type http from 'node:http';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ConfigView } from '../config/view.js';
import { TaasError, isTaasError } from '../errors.js';
import { AuthFailure, type Authenticator } from '../auth/guard.js';
import { COOKIE_HEADER, newCookie } from '../protocol/cookie.js';
import { formatEndpoint, formatLocation, labelHost, locationHost, safePathAndQuery } from '../protocol/endpoint.js';
import { isReservedLabel, normaliseHost, routeHost } from '../protocol/names.js';
import { parseRegistrarPath } from '../protocol/paths.js';
import { SESSION_HEADER, issueSessionToken } from '../protocol/session.js';
import type { Store } from '../store/types.js';
import type { Relay } from '../relay/relay.js';
import { FailureLog } from '../observe/failure-log.js';
import { MethodNotAllowed, fail, sendError, sendJson, sendText } from './respond.js';
import { LogBudget } from '../observe/log-budget.js';

/** Where a label's responders live when not here (multi-node); null when nowhere. */
export type ElsewhereLookup = (label: string, client: { address: string; path: string }) => Promise<{ host: string; port: number } | null>;

export interface RoutesDeps {
  config: ConfigView;
  store: Store;
  auth: Authenticator;
  relay: Relay;
  logger: Logger;
  tls: () => boolean;
  elsewhere?: ElsewhereLookup;
  /** Set while draining: registrations get 503, or a 307 to another node when one is known. */
  draining: () => boolean;
  /** Base URL of another node's registrar for a hidden server this node will not take (draining, full). */
  registerElsewhere?: () => Promise<string | null>;
  /**
   * The shared port's number (taasPort, or the OS's choice for 0) when the registrar listens
   * as one; null when it does not (sharedPort off at start: a reload cannot turn it on).
   */
  sharedPort?: () => number | null;
}

/** Seconds a client is told to wait when no responder is idle: agents refill within moments. */
const NO_RESPONDER_RETRY_S = 5;

export class RegistrarRoutes extends EventEmitter {
  /** Clients refused by a label's policy, logged at info: 10 per label and minute, the rest at debug. */
  private readonly policyLogBudget = new LogBudget(10, 60_000);

  private readonly failures = new FailureLog();

  constructor(private readonly d: RoutesDeps) {
    super();
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      await this.route(req, res);
    } catch (e) {
      const err = isTaasError(e) ? e : new TaasError('TAAS_INTERNAL', 'internal error');
      this.logFailure(e, err);
      if (!res.headersSent) sendError(res, err, e instanceof MethodNotAllowed ? { allow: e.allow } : {});
      else res.destroy();
    }
  }

  /** A 5xx in the log, at the level and within the budget of observe/failure-log.ts. */
  private logFailure(e: unknown, err: TaasError): void {
    if (err.status < 500) return;
    const level = this.failures.level(err.code);
    if (!isTaasError(e)) this.d.logger[level]({ err: e }, 'registrar request failed');
    else this.d.logger[level]({ errorCode: err.code, errorMsg: err.message }, FailureLog.expected(err.code) ? 'registrar refused a request (5xx)' : 'registrar answered 5xx');
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const c = this.d.config.current;
    const route = routeHost(normaliseHost(req.headers.host), c.namedRegistrar, c.namedServers);
    if (route.kind === 'registrar') return this.registrar(req, res, c);
    if (route.kind === 'label') return this.client(req, res, c, route.label);
    throw fail('TAAS_NOT_FOUND', 'unknown host');
  }

  private async registrar(req: http.IncomingMessage, res: http.ServerResponse, c: Readonly<Config>): Promise<void> {
    const path = parseRegistrarPath(req.url ?? '/');
    if (path.kind === 'none') throw fail('TAAS_NOT_FOUND', 'no such path; use PUT /register/LABEL or GET /pairings/LABEL');
    const wanted = path.kind === 'pairings' ? ['GET', 'HEAD'] : ['PUT'];
    if (path.kind !== 'invalid-label' && !wanted.includes(req.method ?? '')) throw new MethodNotAllowed(wanted.join(', '));
    if (path.kind === 'invalid-label') throw fail('TAAS_LABEL_INVALID', 'the label is not a DNS label');
    const auth = singleHeader(req, 'authorization');
    const address = req.socket.remoteAddress ?? '';
    if (path.kind === 'register') {
      if (this.d.draining()) {
        if (await this.redirectRegistration(req, res)) return;
        this.emit('registration', { result: 'draining' });
        throw fail('TAAS_DRAINING', 'this node is draining; register again shortly', { retryAfter: NO_RESPONDER_RETRY_S });
      }
      if (!(await isEmptyBody(req))) throw fail('TAAS_BAD_REQUEST', 'a registration has no body');
    }
    let authed;
    try {
      authed = await this.d.auth.authenticate(auth, address, { reuse: path.kind === 'register' });
    } catch (e) {
      // Failed attempts are logged only for IDs that exist, so a stranger cannot fill the store.
      if (e instanceof AuthFailure && e.id && (await this.d.store.getEntry(e.id).catch(() => null))) {
        await this.attempt(e.id, address, path.label, e.result);
      }
      this.emit('registration', { result: e instanceof AuthFailure ? e.result : isTaasError(e) ? e.code : 'error' });
      throw e;
    }
    const { entry } = authed;
    if (!entry.labels.includes(path.label) || isReservedLabel(path.label, c.namedRegistrar)) {
      await this.attempt(entry.id, address, path.label, 'not-granted');
      this.emit('registration', { result: 'not-granted' });
      throw fail('TAAS_LABEL_NOT_GRANTED', `label ${path.label} is not granted to this ID`);
    }
    if (path.kind === 'pairings') {
      sendJson(res, 200, await this.d.store.listPairings(path.label));
      return;
    }
    const cookie = newCookie();
    const sharedPort = this.answerSharedPort(c, authed.via);
    let port: number;
    try {
      ({ port } = await this.d.relay.allocate({ id: entry.id, label: path.label, remoteAddress: address, cookie }, sharedPort !== null));
      if (sharedPort !== null) port = sharedPort;
    } catch (e) {
      await this.attempt(entry.id, address, path.label, isTaasError(e) ? e.code.replace('TAAS_', '').toLowerCase() : 'error');
      this.emit('registration', { result: 'refused', code: isTaasError(e) ? e.code : 'TAAS_INTERNAL' });
      // Full here: another node of the relay may take it (the agent follows a 3xx).
      if (isTaasError(e) && e.status === 503 && (await this.redirectRegistration(req, res))) return;
      throw isTaasError(e) && e.retryAfter === undefined && e.status === 503 ? new TaasError(e.code, e.message, { retryAfter: NO_RESPONDER_RETRY_S }) : e;
    }
    await this.attempt(entry.id, address, path.label, 'ok');
    this.emit('registration', { result: 'ok', label: path.label });
    const host = labelHost(c, path.label);
    const session = issueSessionToken(entry.secret, entry.id, c.sessionLifetime, this.d.auth.sessionBinding(address));
    this.d.logger.info({ id: entry.id, label: path.label, port, from: address, via: authed.via }, 'registration accepted');
    sendText(res, 200, formatEndpoint(host, port), { [COOKIE_HEADER]: cookie, [SESSION_HEADER]: session });
  }

  /**
   * The shared port, when this registration is answered with it (else null): only a hidden server that will
   * send its cookie line can be told of it (the line is what identifies it there). Without
   * allowCookieless every hidden server must; with it, one that registered with a session token
   * (TAAS-Session: only cookie-speaking agents use one) has shown it does. An original-protocol
   * hidden server keeps getting an allocated port.
   */
  private answerSharedPort(c: Readonly<Config>, via: string): number | null {
    const port = this.d.sharedPort?.() ?? null;
    if (port === null || !c.sharedPort) return null;
    return !c.allowCookieless || via === 'session' ? port : null;
  }

  /** 307 to another node's registrar, when the relay has one; false when there is none. */
  private async redirectRegistration(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    const to = await this.d.registerElsewhere?.();
    if (!to) return false;
    res.writeHead(307, { location: to + safePathAndQuery(req.url ?? '/'), 'content-length': '0', 'cache-control': 'no-store' }).end();
    this.emit('registration', { result: 'redirected' });
    this.d.logger.info({ to }, 'registration sent to another node');
    return true;
  }

  /** Adds to the capped attempt log of an ID known to exist; a store outage loses the line, not the request. */
  private async attempt(id: string, from: string, label: string, result: string): Promise<void> {
    await this.d.store.addAttempt(id, { at: new Date().toISOString(), from, label, result }).catch(() => undefined);
  }

  /**
   * Whether the label belongs to an entry. While the store is unreachable, a label with an idle
   * responder here is known all the same (its registration was authenticated), so the idle
   * responders keep serving clients through a Redis outage instead of every client getting 503.
   */
  private async knownLabel(label: string): Promise<boolean> {
    try {
      return (await this.d.store.entryForLabel(label)) !== null;
    } catch (e) {
      if (isTaasError(e) && e.code === 'TAAS_STORE_UNAVAILABLE' && this.d.relay.labelState(label).idle > 0) return true;
      throw e;
    }
  }

  private async client(req: http.IncomingMessage, res: http.ServerResponse, c: Readonly<Config>, label: string): Promise<void> {
    if (!(await this.knownLabel(label))) throw fail('TAAS_NOT_FOUND', 'unknown label');
    const path = req.url ?? '/';
    const address = req.socket.remoteAddress ?? '';
    // The label's policy before the 307 (the same check the relay's ports make): a refused
    // client is sent nowhere, and learns nothing of the label's responders.
    await this.d.relay.prepareAdmission(label);
    const refused = this.d.relay.admitClient(label, address, 'redirect');
    if (refused) {
      const quiet = !this.policyLogBudget.allow(label);
      this.d.logger[quiet ? 'debug' : 'info']({ label, why: refused.why, from: address }, 'mobile client refused by the label policy');
      this.emit('client', { label, result: `policy-${refused.why}` });
      if (refused.why === 'denied') throw fail('TAAS_POLICY_DENIED', `this address may not reach ${label}`);
      if (refused.why === 'quota') throw fail('TAAS_QUOTA_EXCEEDED', `${label} has used its quota of the day; it is reset at 00:00 UTC`, { retryAfter: refused.retryAfter });
      throw fail('TAAS_POLICY_LIMIT', `a limit of ${label}'s policy is reached (${refused.why}); try again later`, { retryAfter: refused.retryAfter });
    }
    const scheme = this.d.tls() ? 'https' : 'http';
    const here = async (): Promise<string | null> => {
      const port = await this.d.relay.clientPort(label, { remoteAddress: address, path });
      return port === null ? null : formatLocation(scheme, locationHost(c, label), port, path);
    };
    let location: string | null = null;
    // With no idle responder here, a node that has one serves the client at once; this node's
    // own client port (responders pending or all paired) is the fall-back, where it would wait.
    // Another node is named by its own address (its advertiseHost or taasHost), not by the
    // label's name: LABEL.<namedServers> may resolve to any node, not the one holding the port.
    if (this.d.elsewhere && this.d.relay.labelState(label).idle === 0) {
      const there = await this.d.elsewhere(label, { address, path });
      if (there) location = formatLocation(scheme, there.host, there.port, path);
    }
    location ??= await here();
    if (!location) {
      this.emit('client', { label, result: 'no-responder' });
      throw fail('TAAS_NO_RESPONDER', `no hidden server is registered for ${label} right now`, { retryAfter: NO_RESPONDER_RETRY_S });
    }
    this.emit('client', { label, result: 'redirect' });
    res.writeHead(307, { location, 'content-length': '0', 'cache-control': 'no-store' }).end();
  }
}

/** The value of a header that must appear once; a repeated one is refused (no guessing which wins). */
function singleHeader(req: http.IncomingMessage, name: string): string | undefined {
  const all = req.headersDistinct[name];
  if (all && all.length > 1) throw fail('TAAS_AUTH_MALFORMED', `malformed ${name} header: it appears more than once`);
  return all?.[0];
}

/**
 * Whether the request's body is empty, however it is framed (RFC 9112 §6): no length,
 * `Content-Length: 0`, or chunked with only the last chunk (what the Node.js of the original
 * hidden servers sends for a PUT with no body). A chunked body is read until its end or its
 * first octet; the registrar's request timeout bounds the wait.
 */
function isEmptyBody(req: http.IncomingMessage): Promise<boolean> {
  const len = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined) return Promise.resolve(len === undefined || /^0+$/.test(len.trim()));
  // Not `req.complete`: a body parsed already is still unread, and may hold octets.
  if (req.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (empty: boolean) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onError);
      resolve(empty);
    };
    const onData = (chunk: Buffer) => {
      if (chunk.length > 0) {
        req.pause();
        done(false);
      }
    };
    const onEnd = () => done(true);
    const onError = () => done(false);
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onError);
  });
}
