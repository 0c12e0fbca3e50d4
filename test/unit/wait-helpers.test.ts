/**
 * The event waits the tests use instead of polling: they resolve on the event, and they fail
 * (rather than hang or pass) when it does not come — a wait that cannot fail would hide bugs.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { firstCall, untilData } from '../helpers/net.js';

describe('untilData', () => {
  it('resolves on the chunk that makes the condition hold', async () => {
    const s = new PassThrough();
    let out = '';
    s.setEncoding('utf8').on('data', (t: string) => (out += t));
    const w = untilData(s, () => out.includes('ready'), 'ready', 5000);
    s.write('rea');
    s.write('dy\n');
    await expect(w).resolves.toBeUndefined();
  });

  it('rejects when the output ends first, and after its bound', async () => {
    const ended = new PassThrough();
    ended.on('data', () => undefined);
    const w = untilData(ended, () => false, 'ready', 5000);
    ended.end('other\n');
    await expect(w).rejects.toThrow(/output ended before ready/);
    const silent = new PassThrough();
    await expect(untilData(silent, () => false, 'ready', 50)).rejects.toThrow(/ready not seen within 50 ms/);
  });
});

describe('firstCall', () => {
  it('resolves for a call made before or after the wait, and rejects without one', async () => {
    const early = firstCall();
    early.fn();
    await expect(early.called('early', 50)).resolves.toBeUndefined();
    const late = firstCall();
    const w = late.called('late', 5000);
    setImmediate(late.fn);
    await expect(w).resolves.toBeUndefined();
    await expect(firstCall().called('never', 50)).rejects.toThrow(/never not called within 50 ms/);
  });
});
