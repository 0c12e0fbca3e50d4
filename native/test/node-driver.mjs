// The splice engine through Node, for scripts/check-native-memory.sh (run under valgrind):
// N pairings, each a head, an echo of 1,000 octets and a half-close, checked; then shutdown.
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { SpliceEngine } = await import(path.join(root, 'dist', 'relay', 'engines', 'splice.js'));
const N = Number(process.argv[2] ?? 100);
const e = new SpliceEngine({ threads: 2 });
const srv = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
await new Promise(r => srv.listen(0, '127.0.0.1', r));
const port = srv.address().port;
const pending = [];
srv.on('connection', s => pending.shift()(s));
async function ends() { const p = new Promise(r => pending.push(r)); const o = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }); await new Promise(r => o.once('connect', r)); return { o, i: await p }; }
let bad = 0;
for (let k = 0; k < N; k++) {
  const c = await ends(), r = await ends();
  const h = e.pair({ socket: c.i, head: Buffer.from('h') }, { socket: r.i }, { idleTimeoutMs: 0 });
  r.o.on('data', d => r.o.write(d)); r.o.on('end', () => r.o.end());
  const got = []; c.o.on('data', d => got.push(d));
  const ended = new Promise(res => c.o.once('end', res));
  c.o.end('x'.repeat(1000));
  await ended;
  const res = await h.done;
  if (Buffer.concat(got).length !== 1001 || res.reason !== 'eof') bad++;
  c.o.destroy(); r.o.destroy();
}
srv.close(); await e.shutdown();
console.log(`node driver: ${N} pairings, ${bad} bad`);
process.exitCode = bad ? 1 : 0;
