/**
 * Conditional requests (RFC 9110 §13, reference 002): an entry's ETag is its version, its
 * Last-Modified its updatedAt. A replacing write must name the version it replaces, with
 * If-Match or If-Unmodified-Since; stale → 412, missing → 428. HTTP dates have one-second
 * resolution, so If-Unmodified-Since cannot see two writes within the same second: If-Match is
 * the precise one, and what the page and the client use.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TaasError } from '../errors.js';
import type { Entry } from '../store/types.js';

export function etagOf(e: Pick<Entry, 'version'>): string {
  return `"${e.version}"`;
}

export function setValidators(reply: FastifyReply, e: Entry): void {
  void reply.header('etag', etagOf(e)).header('last-modified', new Date(e.updatedAt).toUTCString());
}

function matches(ifMatch: string, e: Entry): boolean {
  if (ifMatch.trim() === '*') return true;
  // Weak comparison is not allowed for If-Match; a W/ tag never matches.
  return ifMatch.split(',').map((t) => t.trim()).includes(etagOf(e));
}

/**
 * Checks the preconditions of a write to an existing entry. Returns the version the write
 * must still find (so a concurrent write in between also gives 412).
 */
export function checkPreconditions(req: FastifyRequest, e: Entry, opts: { required: boolean }): number | undefined {
  const ifMatch = req.headers['if-match'];
  const ius = req.headers['if-unmodified-since'];
  if (typeof ifMatch === 'string') {
    if (!matches(ifMatch, e)) throw new TaasError('TAAS_PRECONDITION_FAILED', `entry ${e.id} is at ${etagOf(e)}, not ${ifMatch}`, { status: 412 });
    return e.version;
  }
  if (typeof ius === 'string') {
    const since = Date.parse(ius);
    if (!Number.isFinite(since)) throw new TaasError('TAAS_BAD_REQUEST', 'If-Unmodified-Since is not an HTTP date');
    const modified = Math.floor(Date.parse(e.updatedAt) / 1000) * 1000;
    if (modified > since) throw new TaasError('TAAS_PRECONDITION_FAILED', `entry ${e.id} was modified at ${new Date(e.updatedAt).toUTCString()}`, { status: 412 });
    return e.version;
  }
  if (opts.required) throw new TaasError('TAAS_PRECONDITION_REQUIRED', `changing entry ${e.id} needs If-Match: ${etagOf(e)} (or If-Unmodified-Since)`);
  return undefined;
}
