/**
 * Two admin nodes over one store, each with its own signing key: a token signed by one is
 * verified by the other through the public key published in the store; revocation on one
 * node holds on the other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
let peer: Awaited<ReturnType<Harness['startPeer']>>;
beforeAll(async () => {
  h = await startHarness();
  peer = await h.startPeer();
});
afterAll(async () => {
  await peer?.close();
  await h?.close();
});

describe('several nodes', () => {
  it('verifies access tokens of another node with its published public key, and honours revocation', async () => {
    const jwksA = await (await fetch(h.url + '/api/auth/jwks.json')).json();
    const jwksB = await (await fetch(peer.url + '/api/auth/jwks.json')).json();
    expect(jwksA.keys).toHaveLength(2);
    expect(jwksB.keys.map((k: { kid: string }) => k.kid).sort()).toEqual(jwksA.keys.map((k: { kid: string }) => k.kid).sort());

    const t = await (await fetch(h.url + '/api/auth/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: h.managementKey }) })).json();
    const atPeer = await fetch(peer.url + '/api/entries', { headers: { authorization: `Bearer ${t.accessToken}` } });
    expect(atPeer.status).toBe(200);

    const sessions = await (await fetch(peer.url + '/api/sessions', { headers: { authorization: `Bearer ${t.accessToken}` } })).json();
    const sid = sessions[0].id;
    expect((await fetch(peer.url + `/api/sessions/${sid}`, { method: 'DELETE', headers: { 'x-api-key': h.managementKey } })).status).toBe(204);
    expect((await fetch(h.url + '/api/entries', { headers: { authorization: `Bearer ${t.accessToken}` } })).status).toBe(401);
  });
});
