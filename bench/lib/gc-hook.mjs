// Preloaded into Node relays by the benchmark only (node --expose-gc --import this): SIGWINCH
// runs a full garbage collection and writes process.memoryUsage() to $TAAS_BENCH_MEM_FILE, so
// the RSS read right after counts live memory, and the live JS heap can be told apart from
// pages V8 keeps after collecting. SIGWINCH because the daemon already uses SIGUSR2 and SIGHUP.
import fs from 'node:fs';

if (typeof globalThis.gc === 'function') {
  process.on('SIGWINCH', () => {
    globalThis.gc();
    globalThis.gc();
    const file = process.env.TAAS_BENCH_MEM_FILE;
    if (file) fs.writeFileSync(file, JSON.stringify(process.memoryUsage()));
  });
}
