/** The policy's data form: CIDRs parsed and matched, policies validated, the CLI flags applied. */
import { describe, expect, it } from 'vitest';
import { CidrSet, formatCidr, parseCidr } from '../../src/protocol/cidr.js';
import { applyPolicyFlags, validatePolicy } from '../../src/protocol/policy.js';
import { validate } from '../../src/config/schema.js';

describe('CIDRs', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1/32'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['::1', '::1/128'],
    ['2001:DB8::1/32', '2001:db8::/32'],
    ['::ffff:192.168.1.7/32', '192.168.1.7/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fe80::1:2:3:4/64', 'fe80::/64'],
  ])('%s is %s', (text, canon) => expect(formatCidr(parseCidr(text)!)).toBe(canon));

  it.each(['', '10.0.0.0/33', '::/129', '10.0.0/8', 'example.com', '1.2.3.4/08', 'fe80::1%eth0', '10.0.0.0/8/8', '1.2.3.4 /8'])('%j is refused', (t) => expect(parseCidr(t)).toBeNull());

  it('matches IPv4, IPv4-mapped and IPv6 addresses', () => {
    const s = new CidrSet(['127.0.0.2/32', '2001:db8::/32'].map((c) => parseCidr(c)!));
    expect(s.has('127.0.0.2')).toBe(true);
    expect(s.has('::ffff:127.0.0.2')).toBe(true);
    expect(s.has('127.0.0.1')).toBe(false);
    expect(s.has('2001:db8:1::5')).toBe(true);
    expect(s.has('::1')).toBe(false);
    expect(s.has('')).toBe(false);
    expect(s.has('junk')).toBe(false);
    const wide = new CidrSet(['0.0.0.0/0', '192.168.0.0/16'].map((c) => parseCidr(c)!));
    expect(wide.has('1.2.3.4')).toBe(true);
    expect(wide.has('::1')).toBe(false); // an IPv4 block does not hold IPv6 addresses
    const narrow = new CidrSet(['192.168.0.0/16', '255.255.255.255/32'].map((c) => parseCidr(c)!));
    expect(['192.168.255.1', '192.169.0.1', '255.255.255.255', '255.255.255.254'].map((a) => narrow.has(a))).toEqual([true, false, true, false]);
  });
});

describe('policies', () => {
  it('canonical form: CIDRs normalised and deduplicated, burst defaulted', () => {
    expect(validatePolicy({ allow: ['10.1.1.1/8', '10.0.0.0/8'], rate: { perSecond: 2.5 } }, 'x')).toEqual({ allow: ['10.0.0.0/8'], rate: { perSecond: 2.5, burst: 3 } });
  });

  it.each([
    [{ bogus: 1 }, /bogus is unknown/],
    [{ allow: 'x' }, /allow must be a list/],
    [{ deny: ['nope'] }, /deny: "nope" is not a CIDR/],
    [{ maxPairings: 0 }, /maxPairings must be a whole number 1\.\./],
    [{ maxPairingsPerClient: 1.5 }, /maxPairingsPerClient must be/],
    [{ rate: { perSecond: 0 } }, /rate.perSecond must be/],
    [{ rate: { perSecond: 1, every: 2 } }, /rate.every is unknown/],
    [{ bandwidth: 10 }, /bandwidth must be a whole number 1024\.\./],
    [{ quota: -1 }, /quota must be/],
    [[], /a policy is an object/],
  ])('%j is refused with TAAS_POLICY_INVALID naming the member', (p, msg) => {
    expect(() => validatePolicy(p, 'policy of cam')).toThrow(msg);
    try {
      validatePolicy(p, 'policy of cam');
    } catch (e) {
      expect((e as { code: string }).code).toBe('TAAS_POLICY_INVALID');
      expect((e as Error).message).toMatch(/^policy of cam: /);
    }
  });

  it('CLI flags replace their member, keep the others, --clear starts from nothing', () => {
    const cur = validatePolicy({ allow: ['10.0.0.0/8'], maxPairings: 4 }, 'x');
    expect(applyPolicyFlags(cur, { rate: '5/10', deny: '10.9.0.0/16,::1' }, 'x')).toEqual({ allow: ['10.0.0.0/8'], deny: ['10.9.0.0/16', '::1/128'], maxPairings: 4, rate: { perSecond: 5, burst: 10 } });
    expect(applyPolicyFlags(cur, { allow: '' }, 'x')).toEqual({ maxPairings: 4 });
    expect(applyPolicyFlags(cur, { clear: true, quota: '1000' }, 'x')).toEqual({ quota: 1000 });
    expect(() => applyPolicyFlags(cur, { maxPairings: 'many' }, 'x')).toThrow(/--max-pairings: "many" is not a whole number/);
    expect(() => applyPolicyFlags(cur, { rate: '5/x' }, 'x')).toThrow(/--rate/);
  });

  it('the config takes a defaultPolicy, validated once, also as JSON from the environment', () => {
    expect(validate({ defaultPolicy: { maxPairings: 3 } }).defaultPolicy).toEqual({ maxPairings: 3 });
    expect(validate({ defaultPolicy: '{"deny":["10.0.0.0/8"]}' }).defaultPolicy).toEqual({ deny: ['10.0.0.0/8'] });
    expect(() => validate({ defaultPolicy: { maxPairings: 'x' } })).toThrow(/config key defaultPolicy: maxPairings must be/);
  });
});
