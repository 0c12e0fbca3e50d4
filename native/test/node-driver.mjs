// The splice engine through Node, for scripts/check-native-memory.sh (run under valgrind):
// N pairings, each a head, an echo of 1,000 octets and a half-close, checked; then shutdown.
// With --exit-live: a second engine is left with live pairings and moving octets, and the
// process exits without shutting it down (Node's teardown finalizes the engine).
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
await e.shutdown();
if (process.argv.includes('--exit-live')) {
  const e2 = new SpliceEngine({ threads: 2 });
  for (let k = 0; k < 6; k++) {
    const c = await ends(), r = await ends();
    e2.pair({ socket: c.i }, { socket: r.i }, { idleTimeoutMs: 0 });
    c.o.write('x'.repeat(100000));
    r.o.resume();
  }
  console.log(`node driver: ${N} pairings, ${bad} bad; exiting with 6 live pairings`);
  process.exit(bad ? 1 : 0);
}
srv.close();
console.log(`node driver: ${N} pairings, ${bad} bad`);
process.exitCode = bad ? 1 : 0;
