/**
 * A hidden server's side done by hand, so a test controls each responder socket: registers
 * with the registrar over real TLS (a TOTP code first, the session token after), then
 * connects to the allocated port and sends the TAAS-Cookie line, as taas-agent does, and takes
 * the pairing signal (PROXY header) off what the relay sends, as taas-agent does too.
 */
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { totpCode } from '../../src/auth/totp.js';
import { formatSessionAuthorization, formatTotpAuthorization } from '../../src/protocol/index.js';
import type { AgentFile } from '../../src/protocol/index.js';
import { writeFlushed } from '../helpers/net.js';
import { stripPairingSignal } from '../helpers/signal.js';

export interface Issued {
  host: string;
  port: number;
  cookie: string;
}

export class Registrant {
  readonly file: AgentFile;
  private session: string | null = null;

  constructor(agentFile: string, private readonly registrar: { host: string; port: number }) {
    this.file = JSON.parse(fs.readFileSync(agentFile, 'utf8')) as AgentFile;
  }

  /** PUT /register/LABEL; returns the allocated endpoint and cookie. */
  register(label: string): Promise<Issued> {
    const authorization = this.session
      ? formatSessionAuthorization({ id: this.file.id, token: this.session })
      : formatTotpAuthorization({ id: this.file.id, token: totpCode(this.file.secret) });
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.registrar.host,
          port: this.registrar.port,
          method: 'PUT',
          path: `/register/${label}`,
          servername: this.file.registrar,
          ca: this.file.ca,
          headers: { host: this.file.registrar, authorization },
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`registration answered ${res.statusCode}: ${body}`));
            const session = res.headers['taas-session'];
            if (typeof session === 'string') this.session = session;
            const i = body.lastIndexOf(':');
            resolve({ host: body.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(body.slice(i + 1)), cookie: String(res.headers['taas-cookie']) });
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** Registers and connects: the returned socket is an idle responder once the relay read its cookie. */
  async respond(label: string): Promise<net.Socket> {
    const issued = await this.register(label);
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: issued.host, port: issued.port, allowHalfOpen: true }, () => resolve(c));
      c.once('error', reject);
    });
    s.on('error', () => {});
    stripPairingSignal(s);
    await writeFlushed(s, `TAAS-Cookie ${issued.cookie}\r\n`);
    return s;
  }
}
