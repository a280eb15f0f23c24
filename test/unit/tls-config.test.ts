/**
 * HTTPS and the public address from flags and the environment (--tls, --tls-cert/--tls-key, --public-url), and what
 * the relay tells the app about how other devices reach it (GET /api/v2/info).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../server/config.ts';
import { relayInfo } from '../../server/api/info.ts';
import type { RelayInfo } from '../../src/core/protocol/index.ts';
import { reachNotice } from '../../src/ui/secure-context.ts';

/** `fn` throws a FerryError with `code`. */
const refuses = (fn: () => unknown, code: string): void => expect(fn).toThrow(expect.objectContaining({ name: 'FerryError', code }));

describe('HTTPS configuration', () => {
  it('is off by default, local with --tls local or FERRY_TLS=local, files with both --tls-cert and --tls-key', () => {
    expect(resolveConfig([], {}).tls).toEqual({ mode: 'off' });
    expect(resolveConfig(['--tls', 'local'], {}).tls).toEqual({ mode: 'local' });
    expect(resolveConfig([], { FERRY_TLS: 'LOCAL' }).tls).toEqual({ mode: 'local' });
    expect(resolveConfig(['--tls', 'off'], { FERRY_TLS: 'local' }).tls).toEqual({ mode: 'off' });
    expect(resolveConfig(['--tls-cert', 'c.pem'], { FERRY_TLS_KEY: '/k.pem' }).tls).toEqual({ mode: 'files', certFile: path.resolve('c.pem'), keyFile: '/k.pem' });
  });

  it('refuses an unknown mode, half a pair, and two ways at once, with the fix', () => {
    refuses(() => resolveConfig(['--tls', 'acme'], {}), 'config/bad-tls');
    expect(() => resolveConfig(['--tls', 'acme'], {})).toThrow(/--tls local .*--tls-cert\/--tls-key/);
    refuses(() => resolveConfig(['--tls-cert', 'c.pem'], {}), 'config/bad-tls');
    expect(() => resolveConfig([], { FERRY_TLS_KEY: 'k.pem' })).toThrow(/both the certificate and its key/);
    refuses(() => resolveConfig(['--tls', 'local', '--tls-cert', 'c.pem', '--tls-key', 'k.pem'], {}), 'config/bad-tls');
  });

  it('takes a public address as an origin, and refuses one with a path or another scheme', () => {
    expect(resolveConfig([], {}).publicUrl).toBeUndefined();
    expect(resolveConfig(['--public-url', 'https://Ferry.Home.arpa:8787/'], {}).publicUrl).toBe('https://ferry.home.arpa:8787');
    expect(resolveConfig([], { FERRY_PUBLIC_URL: 'https://ferry.example:443' }).publicUrl).toBe('https://ferry.example');
    for (const bad of ['ferry.local:8787', 'ftp://ferry.local', 'https://ferry.local/app', 'https://ferry.local/?x=1', 'https://u:p@ferry.local']) {
      refuses(() => resolveConfig(['--public-url', bad], {}), 'config/bad-public-url');
    }
  });
});

describe('how other devices reach the relay', () => {
  const lan = (): string => '192.168.1.20';

  it('is the operator\'s --public-url when given, whatever the relay listens on', () => {
    const info = relayInfo({ host: '127.0.0.1', publicUrl: 'https://ferry.test:9443', tls: { mode: 'local' } }, 9443, { caName: 'Ferry local CA (laptop)', lan });
    expect(info).toEqual({
      publicUrl: 'https://ferry.test:9443',
      tls: 'local',
      caPath: '/ca.crt',
      caName: 'Ferry local CA (laptop)',
      listensOn: { host: '127.0.0.1', port: 9443, localOnly: true },
    });
  });

  it('is the LAN address when the relay listens on every interface, with the scheme it serves', () => {
    expect(relayInfo({ host: '0.0.0.0', tls: { mode: 'local' } }, 8787, { lan }).publicUrl).toBe('https://192.168.1.20:8787');
    expect(relayInfo({ host: '::', tls: { mode: 'off' } }, 80, { lan }).publicUrl).toBe('http://192.168.1.20');
    expect(relayInfo({ host: '0.0.0.0', tls: { mode: 'off' } }, 8787, { lan: () => undefined }).publicUrl).toBeNull();
  });

  it('is the address it listens on when that is not loopback; none, and local-only, on localhost', () => {
    expect(relayInfo({ host: 'fd00::5', tls: { mode: 'files', certFile: 'c', keyFile: 'k' } }, 8787, { lan }).publicUrl).toBe('https://[fd00::5]:8787');
    const local = relayInfo({ host: 'localhost', tls: { mode: 'off' } }, 8787, { lan });
    expect(local.publicUrl).toBeNull();
    expect(local.listensOn.localOnly).toBe(true);
    expect(local.caPath).toBeNull();
  });
});

describe('what the app says about how it is reached', () => {
  const info = (over: Partial<RelayInfo>): RelayInfo => ({ publicUrl: null, tls: 'off', caPath: null, caName: null, listensOn: { host: 'localhost', port: 8787, localOnly: true }, ...over });
  const local = { tls: 'local' as const, caPath: '/ca.crt', caName: 'Ferry local CA (laptop)' };

  it('over plain HTTP from another device: not a secure context, at once and before the relay answers', () => {
    const page = { secure: false, host: '192.168.1.20:8787', origin: 'http://192.168.1.20:8787' };
    expect(reachNotice(page, undefined)).toEqual({ kind: 'insecure', host: '192.168.1.20:8787' });
    // A relay without HTTPS: how to start one with it (and the address that works on the relay's own machine).
    expect(reachNotice(page, info({ listensOn: { host: '0.0.0.0', port: 8787, localOnly: false } }))).toEqual({ kind: 'insecure', host: '192.168.1.20:8787', localUrl: 'http://localhost:8787' });
    // A relay with its local CA: its https:// address, and the certificate to trust first.
    expect(reachNotice(page, info({ ...local, publicUrl: 'https://192.168.1.20:8787' }))).toEqual({
      kind: 'insecure',
      host: '192.168.1.20:8787',
      httpsUrl: 'https://192.168.1.20:8787',
      ca: { url: 'http://192.168.1.20:8787/ca.crt', name: 'Ferry local CA (laptop)' },
    });
  });

  it('on the relay\'s machine: a warning when it listens on localhost only, else how to set up a phone', () => {
    const laptop = { secure: true, host: 'localhost:8787', origin: 'http://localhost:8787' };
    expect(reachNotice(laptop, info({}))).toEqual({ kind: 'local-only', listensOn: 'localhost', origin: 'http://localhost:8787' });
    expect(reachNotice(laptop, info({ ...local, publicUrl: 'https://192.168.1.20:8787', listensOn: { host: '0.0.0.0', port: 8787, localOnly: false } }))).toEqual({
      kind: 'phone-setup',
      httpsUrl: 'https://192.168.1.20:8787',
      phoneUrl: 'http://192.168.1.20:8787',
      ca: { url: 'http://192.168.1.20:8787/ca.crt', name: 'Ferry local CA (laptop)' },
    });
    // At the public address itself, or with a certificate browsers already trust, there is nothing to say.
    expect(reachNotice({ secure: true, host: '192.168.1.20:8787', origin: 'https://192.168.1.20:8787' }, info({ ...local, publicUrl: 'https://192.168.1.20:8787' }))).toBeNull();
    expect(reachNotice(laptop, info({ tls: 'files', publicUrl: 'https://ferry.example' }))).toBeNull();
  });
});
