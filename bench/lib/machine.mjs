// The machine a run was measured on, printed with every result.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString().split('\n')[0].trim();
  } catch (e) {
    return (e.stdout?.toString() || e.stderr?.toString() || '').split('\n')[0].trim() || null;
  }
}

function shellLimit(flag) {
  return firstLine('sh', ['-c', `ulimit ${flag}`]);
}

export function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const mhz = /cpu MHz\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim();
  let pipeMax = null;
  try {
    pipeMax = Number(fs.readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim());
  } catch {}
  return {
    cpu: model,
    cpuMHz: mhz ? Number(mhz) : null,
    cpus: os.availableParallelism(),
    memoryGB: Math.round(os.totalmem() / 1e8) / 10,
    kernel: `${os.type()} ${os.release()}`,
    distro: /PRETTY_NAME="([^"]+)"/.exec(fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '')?.[1] ?? null,
    node: process.version,
    haproxy: firstLine('haproxy', ['-v']),
    socat: firstLine('socat', ['-V'])?.replace(/^socat by .*$/, '') || firstLine('sh', ['-c', 'socat -V | grep "socat version"']),
    gcc: firstLine('gcc', ['--version']),
    pipeMaxSize: pipeMax,
    nofile: { soft: Number(shellLimit('-Sn')), hard: Number(shellLimit('-Hn')) },
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
