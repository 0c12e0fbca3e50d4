/**
 * The Lua scripts of the Redis store. Each touches keys of one hash tag only (declared in KEYS,
 * as Cluster requires) and does one small read-modify-write atomically. Entry rules themselves
 * (label ownership, versions) stay in TypeScript (entry-codec.ts, shared with the embedded
 * store); the scripts only make a write conditional on nothing having changed since the read.
 */
import crypto from 'node:crypto';
import type { RedisClient } from './redis-connection.js';

export class LuaScript {
  private readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = crypto.createHash('sha1').update(lua).digest('hex');
  }

  /** EVALSHA, loading the script with EVAL when the server does not know it (restart, new node). */
  async run<T = unknown>(client: RedisClient, keys: string[], args: (string | number)[]): Promise<T> {
    try {
      return (await client.evalsha(this.sha, keys.length, ...keys, ...args)) as T;
    } catch (e) {
      if (!/NOSCRIPT/.test((e as Error).message)) throw e;
      return (await client.eval(this.lua, keys.length, ...keys, ...args)) as T;
    }
  }
}

/** KEYS gen, entries → { gen, [id, json, ...] }: a consistent snapshot of all entries. */
export const READ_ENTRIES = new LuaScript(`
return { redis.call('GET', KEYS[1]) or '0', redis.call('HGETALL', KEYS[2]) }
`);

/** KEYS labels, entries; ARGV label → the sealed entry owning the label, or nil. */
export const ENTRY_FOR_LABEL = new LuaScript(`
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[2], id)
`);

/**
 * KEYS gen, entries, labels; ARGV expectedGen, id, json ('' deletes), nOld, oldLabels...,
 * newLabels... → the new generation, or -1 when another write came first (the caller re-reads
 * and tries again). Old labels are the ones the caller read for this id under expectedGen.
 */
export const COMMIT_ENTRY = new LuaScript(`
local gen = tonumber(redis.call('GET', KEYS[1]) or '0')
if gen ~= tonumber(ARGV[1]) then return -1 end
local id = ARGV[2]
local nOld = tonumber(ARGV[4])
for i = 1, nOld do redis.call('HDEL', KEYS[3], ARGV[4 + i]) end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], id)
else
  redis.call('HSET', KEYS[2], id, ARGV[3])
  for i = 5 + nOld, #ARGV do redis.call('HSET', KEYS[3], ARGV[i], id) end
end
return redis.call('INCR', KEYS[1])
`);

/**
 * KEYS step, reuses; ARGV bucket, max → 1 when the step was used from this bucket and fewer than
 * max reuses were counted (this one is counted), else 0. The counter expires with the step.
 */
export const REUSE_STEP = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], math.max(1, redis.call('PTTL', KEYS[1]))) end
if n > tonumber(ARGV[2]) then return 0 end
return 1
`);

/** KEYS hash; ARGV field, ttlMs → the field incremented by one, the key's TTL renewed. */
export const HINCR_TTL = new LuaScript(`
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
`);

/** KEYS hash; ARGV field, value, ttlMs: HSET with the key's TTL renewed. */
export const HSET_TTL = new LuaScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`);

/** KEYS counter; ARGV ttlMs → the count; the TTL is set by the first increment of the window. */
export const INCR_WINDOW = new LuaScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`);

/** KEYS list; ARGV item, cap: newest first, at most cap items. */
export const PUSH_CAPPED = new LuaScript(`
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
`);

/** KEYS pairings, daily; ARGV record, cap, day, bytes: records the pairing and counts it. */
export const ADD_PAIRING = new LuaScript(`
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':p', 1)
redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':b', ARGV[4])
return 1
`);

/** KEYS doc, index; ARGV docKey, json, ttlMs (0: none). */
export const PUT_DOC = new LuaScript(`
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`);

/** KEYS doc, index; ARGV docKey, json, ttlMs → 1 when written, 0 when a document is there (SET NX). */
export const CLAIM_DOC = new LuaScript(`
if not redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'NX') then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`);

/** KEYS doc, index; ARGV docKey → 1 when the document existed (and had not expired). */
export const DELETE_DOC = new LuaScript(`
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return n
`);
