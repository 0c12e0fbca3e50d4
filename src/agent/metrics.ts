/**
 * The agent's metrics (`taas-agent --metrics HOST:PORT`), Prometheus text at `/metrics`, the
 * way the daemon exposes its own: counters follow the agent's events, gauges are read from the
 * pools at each scrape so they cannot drift. Labels are the agent file's own (a short, fixed
 * list), so the per-label series are bounded without a cap.
 */
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Agent } from './agent.js';

export interface AgentMetrics {
  registry: Registry;
  /** Where it listens (port resolved when 0 was asked). */
  address: { host: string; port: number };
  close(): Promise<void>;
}

export function agentRegistry(agent: Agent): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'taas_agent_' });
  const registrations = new Counter({ name: 'taas_agent_registrations_total', help: 'Registration attempts by result (ok, refused-401, refused-404, retry-429, retry-503, unreachable, untrusted, bad-response, connect-failed)', labelNames: ['label', 'result'], registers });
  const reconnects = new Counter({ name: 'taas_agent_reconnects_total', help: 'Idle registrations the relay or the network closed, each replaced by a new one', labelNames: ['label'], registers });
  const pairings = new Counter({ name: 'taas_agent_pairings_total', help: 'Mobile clients paired', labelNames: ['label'], registers });
  const bytes = new Counter({ name: 'taas_agent_bytes_total', help: 'Octets forwarded by ended pairings; up = mobile client to target, down = target to mobile client', labelNames: ['label', 'direction'], registers });
  const snap = () => agent.snapshot();
  new Gauge({ name: 'taas_agent_idle_responders', help: 'Registrations open at the relay and waiting for a mobile client', labelNames: ['label'], registers, collect() { this.reset(); for (const p of snap()) this.set({ label: p.label }, p.idle + p.retiring); } });
  new Gauge({ name: 'taas_agent_paired_responders', help: 'Pairings in progress', labelNames: ['label'], registers, collect() { this.reset(); for (const p of snap()) this.set({ label: p.label }, p.paired); } });
  new Gauge({ name: 'taas_agent_pool_size', help: 'Idle registrations the agent keeps per label (--pool)', labelNames: ['label'], registers, collect() { this.reset(); for (const p of agent.pools) this.set({ label: p.label }, p.size); } });
  new Gauge({ name: 'taas_agent_relay_node_up', help: '1 while a relay node of the agent file answers, 0 while it is set aside', labelNames: ['node'], registers, collect() { this.reset(); for (const n of agent.nodes.snapshot()) this.set({ node: n.node }, n.answering ? 1 : 0); } });
  new Gauge({ name: 'taas_agent_draining', help: '1 once SIGTERM/SIGINT was received: no new registrations', registers, collect() { this.set(agent.status().stopping ? 1 : 0); } });
  agent.on('registration', (label, result) => registrations.inc({ label, result }));
  agent.on('lost', (label) => reconnects.inc({ label }));
  agent.on('paired', (label) => pairings.inc({ label }));
  agent.on('pairing-end', (label, d) => {
    bytes.inc({ label, direction: 'up' }, d.bytes?.aToB ?? 0);
    bytes.inc({ label, direction: 'down' }, d.bytes?.bToA ?? 0);
  });
  return registry;
}

/** Serves the registry at GET /metrics on host:port; anything else is a 404. */
export async function serveAgentMetrics(agent: Agent, host: string, port: number): Promise<AgentMetrics> {
  const registry = agentRegistry(agent);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as { port: number };
  return {
    registry,
    address: { host, port: a.port },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
