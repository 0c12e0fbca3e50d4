/**
 * The OpenAPI 3.1 description of the admin API, served at /api/openapi.json. Written by hand
 * next to the routes; test/admin/openapi.test.ts holds it to the routes both ways.
 */
import { ERROR_CODES } from '../errors.js';

type Op = Record<string, unknown>;

const err = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const json = (description: string, schema: unknown) => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const labelParam = { name: 'label', in: 'path', required: true, schema: { type: 'string' } };
const limitParam = { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } };
const ifMatch = { name: 'If-Match', in: 'header', schema: { type: 'string' }, description: 'ETag of the version replaced ("3"), or *' };
const ifUnmod = { name: 'If-Unmodified-Since', in: 'header', schema: { type: 'string' }, description: 'HTTP date; stale if the entry changed after it' };
const common = { '401': err('TAAS_ADMIN_AUTH_REQUIRED or TAAS_ADMIN_AUTH_INVALID'), '403': err('TAAS_FORBIDDEN or TAAS_CSRF_FAILED') };
const entryBody = { required: true, content: { 'application/json': { schema: ref('EntryInput') } } };

function op(perm: string | null, summary: string, responses: Record<string, unknown>, extra: Op = {}): Op {
  return { summary, ...(perm ? { 'x-permission': perm, security: [{ apiKey: [] }, { bearer: [] }, { cookie: [] }] } : { security: [] }), ...extra, responses: perm ? { ...responses, ...common } : responses };
}

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'taas-server admin API', version: '1', description: 'Entries, live state, API keys and sessions of a taas-server relay. Every error is { errorCode, errorMsg }.' },
    paths: {
      '/healthz': { get: op(null, 'The process answers', { '200': json('ok', { type: 'object' }) }) },
      '/readyz': { get: op(null, 'The store answers', { '200': json('ready', { type: 'object' }), '503': err('TAAS_STORE_UNAVAILABLE') }) },
      '/metrics': { get: op('read', 'Prometheus metrics (when the daemon provides a registry)', { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } }) },
      '/api/openapi.json': { get: op(null, 'This document', { '200': json('OpenAPI document', { type: 'object' }) }) },
      '/api/auth/jwks.json': { get: op(null, 'Public keys that verify access tokens (all nodes)', { '200': json('JWK set', { type: 'object' }) }) },
      '/api/auth/session': {
        post: op(null, 'Sign in with an API key: sets the access and refresh cookies', { '200': json('session', ref('Session')), '401': err('TAAS_ADMIN_AUTH_INVALID'), '429': err('TAAS_RATE_LIMITED') }, { requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['key'], properties: { key: { type: 'string' } } } } } } }),
        get: op('any', 'The current principal (and the CSRF token of a cookie session)', { '200': json('session', ref('Session')) }),
        delete: op('any', 'Sign out: revokes the refresh token, clears the cookies', { '204': { description: 'signed out' } }),
      },
      '/api/auth/refresh': { post: op(null, 'A new access token from the refresh cookie (or { refreshToken } in the body)', { '200': json('new access token', { type: 'object' }), '401': err('TAAS_ADMIN_AUTH_REQUIRED or TAAS_ADMIN_AUTH_INVALID') }) },
      '/api/auth/token': { post: op(null, 'Access and refresh tokens in the body, for scripts', { '200': json('tokens', { type: 'object' }), '401': err('TAAS_ADMIN_AUTH_INVALID') }) },
      '/api/entries': {
        get: op('read', 'All entries (no secrets)', { '200': json('entries', { type: 'array', items: ref('Entry') }) }),
        post: op('write', 'Create an entry with a server-chosen ID', { '201': json('created; the secret is shown this once', ref('IssuedEntry')), '409': err('TAAS_LABEL_TAKEN'), '422': err('TAAS_ENTRY_INVALID'), '400': err('TAAS_BAD_REQUEST or TAAS_LABEL_INVALID') }, { requestBody: entryBody }),
      },
      '/api/entries/{id}': {
        parameters: [idParam],
        get: op('read', 'One entry, with ETag and Last-Modified', { '200': json('entry', ref('Entry')), '304': { description: 'If-None-Match matched' }, '404': err('TAAS_ENTRY_NOT_FOUND') }),
        put: op('write', 'Create with this ID (201), or replace with If-Match / If-Unmodified-Since', { '200': json('replaced', ref('Entry')), '201': json('created; the secret is shown this once', ref('IssuedEntry')), '409': err('TAAS_LABEL_TAKEN or TAAS_ENTRY_EXISTS'), '412': err('TAAS_PRECONDITION_FAILED'), '422': err('TAAS_ENTRY_INVALID'), '428': err('TAAS_PRECONDITION_REQUIRED') }, { parameters: [ifMatch, ifUnmod], requestBody: entryBody }),
        patch: op('write', 'JSON Patch (RFC 6902) of labels, clientPorts, policies and clientMode', { '200': json('patched', ref('Entry')), '412': err('TAAS_PRECONDITION_FAILED'), '415': err('TAAS_UNSUPPORTED_MEDIA_TYPE'), '422': err('TAAS_PATCH_INVALID or TAAS_ENTRY_INVALID'), '428': err('TAAS_PRECONDITION_REQUIRED') }, { parameters: [ifMatch, ifUnmod], requestBody: { required: true, content: { 'application/json-patch+json': { schema: { type: 'array', items: { type: 'object' } } } } } }),
        delete: op('write', 'Delete the entry (If-Match honoured when sent)', { '204': { description: 'deleted' }, '404': err('TAAS_ENTRY_NOT_FOUND'), '412': err('TAAS_PRECONDITION_FAILED') }, { parameters: [ifMatch] }),
      },
      '/api/entries/{id}/labels': { parameters: [idParam], post: op('write', 'Add a label', { '200': json('entry', ref('Entry')), '409': err('TAAS_LABEL_TAKEN'), '400': err('TAAS_LABEL_INVALID') }, { requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', properties: { label: { type: 'string' } } } } } } }) },
      '/api/entries/{id}/labels/{label}': { parameters: [idParam, labelParam], delete: op('write', 'Remove a label', { '200': json('entry', ref('Entry')), '404': err('TAAS_NOT_FOUND'), '422': err('TAAS_ENTRY_INVALID (the last label)') }) },
      '/api/entries/{id}/agent-file': { parameters: [idParam], get: op('write', 'The agent file (holds the secret)', { '200': json('agent file', { type: 'object' }), '404': err('TAAS_ENTRY_NOT_FOUND') }) },
      '/api/entries/{id}/rotate-secret': { parameters: [idParam], post: op('write', 'A fresh TOTP secret, shown this once', { '200': json('issued', ref('IssuedEntry')), '404': err('TAAS_ENTRY_NOT_FOUND') }) },
      '/api/entries/{id}/attempts': { parameters: [idParam, limitParam], get: op('read', 'Recent registration attempts of the ID', { '200': json('attempts, newest first', { type: 'array' }) }) },
      '/api/labels/{label}/pairings': { parameters: [labelParam, limitParam], get: op('read', 'Recent pairings of the label', { '200': json('pairings, newest first', { type: 'array' }) }) },
      '/api/labels/{label}/history': { parameters: [labelParam], get: op('read', "The label's last hour over every node, one sample per minute (pairings, octets each way, idle responders, refusals by reason), and its policy", { '200': json('{ label, minuteMs, start, minutes: [...], policy, defaultPolicy }', { type: 'object' }) }) },
      '/api/counts': { get: op('read', 'Pairings and bytes per label and day', { '200': json('counts', { type: 'array' }) }, { parameters: [{ name: 'label', in: 'query', schema: { type: 'string' } }] }) },
      '/api/live': { get: op('read', 'Live state per node: idle responders, waiting clients, client ports', { '200': json('nodes', { type: 'array' }) }) },
      '/api/status': { get: op('read', 'One row per entry with live state, last registration and last pairing', { '200': json('rows', { type: 'array' }) }) },
      '/api/keys': {
        get: op('keys', 'All API keys (never the key itself)', { '200': json('keys', { type: 'array', items: ref('ApiKey') }) }),
        post: op('keys', 'Create a key; the key is shown this once', { '201': json('created', ref('ApiKey')), '400': err('TAAS_BAD_REQUEST') }, { requestBody: { required: true, content: { 'application/json': { schema: ref('ApiKeyInput') } } } }),
      },
      '/api/keys/{id}': { parameters: [idParam], get: op('keys', 'One key', { '200': json('key', ref('ApiKey')), '404': err('TAAS_NOT_FOUND') }), delete: op('keys', 'Revoke a key and its sessions', { '200': json('revoked key', ref('ApiKey')), '404': err('TAAS_NOT_FOUND') }) },
      '/api/keys/{id}/log': { parameters: [idParam], get: op('keys', 'The last 100 requests made with the key', { '200': json('access log, newest first', { type: 'array' }) }) },
      '/api/sessions': { get: op('keys', 'Open sessions (refresh tokens)', { '200': json('sessions', { type: 'array' }) }) },
      '/api/sessions/{id}': { parameters: [idParam], delete: op('keys', 'Revoke a session', { '204': { description: 'revoked' }, '404': err('TAAS_NOT_FOUND') }) },
      '/api/log-level': { put: op('keys', 'Change the daemon log level', { '204': { description: 'changed' }, '400': err('TAAS_BAD_REQUEST') }) },
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer', description: 'an API key (taas_…) or an access token (ES256 JWT)' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'taas_at', description: 'page session; writes also need X-CSRF-Token' },
      },
      schemas: {
        Error: { type: 'object', required: ['errorCode', 'errorMsg'], properties: { errorCode: { type: 'string', enum: Object.keys(ERROR_CODES) }, errorMsg: { type: 'string' } } },
        Entry: { type: 'object', properties: { id: { type: 'string' }, labels: { type: 'array', items: { type: 'string' } }, clientPorts: { type: 'object', additionalProperties: { type: 'integer' } }, policies: { type: 'object', additionalProperties: ref('LabelPolicy') }, clientMode: { type: 'object', additionalProperties: { type: 'string', enum: ['redirect', 'passthrough'] } }, createdAt: { type: 'string' }, updatedAt: { type: 'string' }, version: { type: 'integer' } } },
        EntryInput: { type: 'object', required: ['labels'], properties: { labels: { type: 'array', items: { type: 'string' } }, clientPorts: { type: 'object', additionalProperties: { type: 'integer' } }, policies: { type: 'object', additionalProperties: ref('LabelPolicy') }, clientMode: { type: 'object', additionalProperties: { type: 'string', enum: ['redirect', 'passthrough'] } } } },
        LabelPolicy: { type: 'object', additionalProperties: false, properties: { allow: { type: 'array', items: { type: 'string' } }, deny: { type: 'array', items: { type: 'string' } }, maxPairings: { type: 'integer', minimum: 1 }, maxPairingsPerClient: { type: 'integer', minimum: 1 }, rate: { type: 'object', properties: { perSecond: { type: 'number' }, burst: { type: 'integer', minimum: 1 } } }, bandwidth: { type: 'integer', minimum: 1024 }, quota: { type: 'integer', minimum: 1 } } },
        IssuedEntry: { type: 'object', properties: { entry: ref('Entry'), secret: { type: 'string' }, otpauthUri: { type: 'string' }, qr: { type: 'string', description: 'SVG data URL of the otpauth URI' }, agentFile: { type: 'object' } } },
        ApiKey: { type: 'object', properties: { key: { type: 'string', description: 'only in the response that creates it' }, id: { type: 'string' }, name: { type: 'string' }, permissions: { type: 'array', items: { enum: ['read', 'write', 'keys'] } }, expiresAt: { type: ['string', 'null'] }, origins: { type: 'array', items: { type: 'string' } }, createdAt: { type: 'string' }, lastUsedAt: { type: ['string', 'null'] }, revokedAt: { type: ['string', 'null'] }, state: { enum: ['active', 'expired', 'revoked'] } } },
        ApiKeyInput: { type: 'object', required: ['name', 'permissions'], properties: { name: { type: 'string' }, permissions: { type: 'array', items: { enum: ['read', 'write', 'keys'] } }, expiresAt: { type: ['string', 'null'] }, origins: { type: 'array', items: { type: 'string' } } } },
        Session: { type: 'object', properties: { key: ref('ApiKey'), sessionId: { type: ['string', 'null'] }, csrf: { type: ['string', 'null'] } } },
      },
    },
  };
}
