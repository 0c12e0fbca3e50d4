// A minimal relay process around one relay engine, for engine-level benchmark rows: accepts on
// LISTEN_PORT, connects to TARGET_PORT, and hands the two sockets to the engine (as the daemon
// does after a pairing). No registrar, no pools: the engine's own cost, nothing else.
//   node bench/lib/engine-relay.mjs splice|stream LISTEN_PORT TARGET_PORT
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [kind, listenPort, targetPort] = process.argv.slice(2);
const mod = await import(path.join(root, 'dist', 'relay', 'engines', `${kind}.js`));
const threads = process.env.TAAS_SPLICE_THREADS ? Number(process.env.TAAS_SPLICE_THREADS) : undefined;
const engine = kind === 'splice' ? new mod.SpliceEngine({ threads }) : new mod.StreamEngine();
const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
  client.on('error', () => {});
  const target = net.connect({ port: Number(targetPort), host: '127.0.0.1', allowHalfOpen: true });
  target.on('error', () => client.destroy());
  target.once('connect', () => {
    target.pause();
    engine.pair({ socket: client }, { socket: target }, { idleTimeoutMs: 0 });
  });
});
server.listen(Number(listenPort), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', async () => {
  server.close();
  await engine.shutdown();
  process.exit(0);
});
