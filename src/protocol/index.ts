/** The protocol module: everything that parses or formats bytes on the wire. */
export * from './limits.js';
export * from './names.js';
export * from './totp-header.js';
export * from './endpoint.js';
export * from './address.js';
export * from './cookie.js';
export * from './paths.js';
export * from './error-body.js';
export * from './agent-file.js';
export * from './session.js';
export * from './retry-after.js';
export * from './proxy-header.js';
export * from './acme.js';
export * from './client-hello.js';
