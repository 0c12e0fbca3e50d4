/**
 * The HTTP-01 listener (port 80 on a VPS): plain HTTP that answers
 * `GET /.well-known/acme-challenge/TOKEN` with the key authorization and nothing else (404).
 * Bounded like every pre-authentication listener: small headers, short timeouts.
 */
import http from 'node:http';
import { http01Token } from '../../protocol/index.js';
import type { ChallengeBook } from './challenges.js';

/** A validator's request is one short line and a few headers. */
const MAX_HEADER_BYTES = 4096;
/** CAs answer within seconds; anything slower is not a validator. */
const HEADERS_TIMEOUT_MS = 10_000;

export class Http01Server {
  private server: http.Server | null = null;

  constructor(private readonly book: ChallengeBook) {}

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  async listen(port: number, host: string): Promise<void> {
    const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: 1000 }, (req, res) => {
      void this.answer(req, res);
    });
    server.on('clientError', (_e, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const token = req.method === 'GET' || req.method === 'HEAD' ? http01Token((req.url ?? '').split('?')[0]!) : null;
    const body = token ? await this.book.httpAnswer(token).catch(() => null) : null;
    if (body === null) {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '0', connection: 'close' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) }).end(req.method === 'HEAD' ? undefined : body);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
