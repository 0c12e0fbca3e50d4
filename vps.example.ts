// A VPS configuration: copy to local.ts (or /etc/taas-server/config.ts) and edit.
// `taas-server config check --config local.ts` validates it and prints the effective values.
import type { Config } from './src/config/schema.js';

const config: Partial<Config> = {
  // The VPS's stable public address: the registrar listens here and Location points here.
  taasHost: '203.0.113.10',
  taasPort: 443,
  // DNS: registrar.taas.example.com A 203.0.113.10 and *.taas.example.com A 203.0.113.10
  namedRegistrar: 'registrar.taas.example.com',
  namedServers: 'taas.example.com',
  // Run `taas-server make-cert --config local.ts` first; it writes these two files.
  keyFile: '/var/lib/taas-server/registrar.key',
  certFile: '/var/lib/taas-server/registrar.crt',
  dataDir: '/var/lib/taas-server',
  portRange: [20000, 29999],
  // One port for everything (only 443 open): registrations, responders and SNI passthrough
  // labels (`entries add --client-mode passthrough`) on taasPort; see README, "One port (443)".
  // sharedPort: true,
  // Keep the label's name in Location so clients can check the hidden server's certificate
  // (hidden servers are still told taasHost:PORT to connect to):
  // locationHost: '{label}.taas.example.com',
  // Original-protocol hidden servers (no TAAS-Cookie line, pools by code reuse): see README,
  // "Compatibility with the original taas-server".
  // allowCookieless: true,
  adminHost: '127.0.0.1',
  adminPort: 8893,
  logLevel: 'info',
  relayEngine: 'auto',
  // The pairing signal: a PROXY protocol header (v2, or 'v1') sent to an agent before each client.
  proxyProtocol: 'v2',
  // Several nodes share entries and state through Redis (see README, "Many nodes"):
  // redis: 'rediss://:password@redis.internal:6380',
  // A public certificate for the registrar and the labels, renewed by itself (docs/operations.md, "ACME"):
  // acme: {
  //   directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
  //   email: 'ops@example.com',
  //   termsOfServiceAgreed: true,
  // },
};

export default config;
