/**
 * The default node id (config.nodeId unset) must differ between nodes, or they overwrite each
 * other's directory record and answer each other's client-port requests.
 */
import { describe, expect, it } from 'vitest';
import { defaultNodeId } from '../../src/cluster/node-link.js';

describe('default node id', () => {
  it('is taasHost:taasPort for a node on its own address', () => {
    expect(defaultNodeId({ taasHost: '203.0.113.11', taasPort: 443 }, 'box')).toBe('203.0.113.11:443');
  });

  it('names the machine, not the wildcard, for nodes that all listen on 0.0.0.0 or :: (containers)', () => {
    const a = defaultNodeId({ taasHost: '0.0.0.0', taasPort: 443 }, 'taas-7f9c');
    const b = defaultNodeId({ taasHost: '0.0.0.0', taasPort: 443 }, 'taas-2b41');
    expect(a).toBe('taas-7f9c:443');
    expect(b).not.toBe(a);
    expect(defaultNodeId({ taasHost: '::', taasPort: 443 }, 'taas-2b41')).toBe('taas-2b41:443');
  });
});
