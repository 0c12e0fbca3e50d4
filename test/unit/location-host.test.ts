/**
 * `locationHost` (issue 11): the host in a mobile client's Location, independent of the
 * HOST:PORT hidden servers are told. The embedded names give `LABEL.localhost`.
 */
import { describe, expect, it } from 'vitest';
import { validate } from '../../src/config/schema.js';
import { labelHost, locationHost } from '../../src/protocol/endpoint.js';

describe('locationHost', () => {
  it('the embedded default keeps the client on LABEL.localhost; the 200 body stays taasHost', () => {
    const c = validate({});
    expect(locationHost(c, 'demo')).toBe('demo.localhost');
    expect(labelHost(c, 'demo')).toBe('127.0.0.1');
  });

  it('a config that names its host keeps Location there unless locationHost is set', () => {
    expect(locationHost(validate({ taasHost: '192.0.2.7' }), 'demo')).toBe('192.0.2.7');
    expect(locationHost(validate({ namedServers: 'taas.example.com' }), 'demo')).toBe('127.0.0.1');
    expect(locationHost(validate({ advertiseHost: 'relay.example.com' }), 'demo')).toBe('relay.example.com');
    const named = validate({ taasHost: '192.0.2.7', namedServers: 'taas.example.com', locationHost: '{label}.taas.example.com' });
    expect(locationHost(named, 'myhome')).toBe('myhome.taas.example.com');
    expect(labelHost(named, 'myhome')).toBe('192.0.2.7');
  });

  it('advertiseHost alone still sets both, as before', () => {
    const c = validate({ taasHost: '0.0.0.0', advertiseHost: '{label}.relay.example.com' });
    expect(locationHost(c, 'a')).toBe('a.relay.example.com');
    expect(labelHost(c, 'a')).toBe('a.relay.example.com');
  });
});
