/**
 * The relay's own CA for a home network: certificates a TLS client accepts (checked by real handshakes through
 * Node's OpenSSL), name constraints that keep the CA from vouching for anything on the public internet, and the
 * rotation rules — the server certificate is made again when the machine's names change or two thirds of its life
 * have passed, the CA only when it cannot sign for the names or nears its own end.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { certificateFacts, issueServerCertificate, makeCa, permits, permittedNames, renewalDue, type Names, type Pem } from '../../server/tls/certificates.ts';
import { ensureLocalTls } from '../../server/tls/local-ca.ts';
import { readCertificateFiles } from '../../server/tls/pem-files.ts';
import { isFerryError } from '../../src/core/errors.ts';
import { isLoopbackHost, lanAddress, machineNames } from '../../server/tls/machine-names.ts';

const DAY = 86_400_000;
const home: Names = { dns: ['localhost', 'laptop', 'laptop.local'], ips: ['127.0.0.1', '::1', '192.168.1.20'] };

/**
 * Serves `server` over TLS on loopback and connects as `servername` trusting `ca` only; resolves with the verdict
 * (OpenSSL's error code, or its message where Node has no code for it).
 */
async function handshake(server: Pem, ca: string, servername: string): Promise<string> {
  const httpsServer = https.createServer({ cert: server.cert, key: server.key }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpsServer.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, checkServerIdentity: (host, cert) => tls.checkServerIdentity(host, cert) });
      socket.once('secureConnect', () => {
        socket.end();
        resolve('trusted');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'UNSPECIFIED' ? err.message : (err.code ?? err.message)));
    });
  } finally {
    await new Promise((resolve) => httpsServer.close(resolve));
  }
}

describe('certificates from the local CA', () => {
  let ca: Pem;

  beforeAll(async () => {
    ca = await makeCa('laptop', home);
  });

  test('a server certificate it signs is accepted by a TLS client that trusts the CA, for the names it covers', async () => {
    const server = await issueServerCertificate(ca, home);
    const facts = certificateFacts(server.cert);
    expect(facts.signedBy(ca.cert)).toBe(true);
    expect(facts.matches(server.key)).toBe(true);
    expect(facts.covers(home)).toBe(true);
    expect(facts.covers({ dns: ['other.local'], ips: [] })).toBe(false);
    // Apple's platforms refuse server certificates valid for more than 398 days.
    expect((facts.notAfter.getTime() - facts.notBefore.getTime()) / DAY).toBeLessThanOrEqual(398);
    expect(await handshake(server, ca.cert, 'laptop.local')).toBe('trusted');
    expect(await handshake(server, ca.cert, 'somewhere.else')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    // Another CA's client does not trust it.
    expect(await handshake(server, (await makeCa('other', home)).cert, 'laptop.local')).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  test('is name-constrained: a certificate it signed for a public name is refused by the client', async () => {
    expect(permittedNames(ca.cert)?.dns).toEqual(expect.arrayContaining(['local', 'home.arpa', 'laptop']));
    expect(permits(permittedNames(ca.cert)!, { dns: ['nas.home.arpa', 'laptop'], ips: ['10.1.2.3', 'fd00::5'] })).toBe(true);
    expect(permits(permittedNames(ca.cert)!, { dns: ['bank.example'], ips: [] })).toBe(false);
    expect(permits(permittedNames(ca.cert)!, { dns: [], ips: ['203.0.113.9'] })).toBe(false);
    const rogue = await issueServerCertificate(ca, { dns: ['bank.example'], ips: [] });
    expect(await handshake(rogue, ca.cert, 'bank.example')).toBe('permitted subtree violation');
  });
});

describe('the local CA in the data folder', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-local-ca-'));
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  const now = new Date('2026-06-01T00:00:00Z');
  const at = (days: number): Date => new Date(now.getTime() + days * DAY);
  const files = async (): Promise<{ ca: string; server: string }> => ({ ca: await readFile(path.join(dir, 'ca.crt'), 'utf8'), server: await readFile(path.join(dir, 'server.crt'), 'utf8') });

  test('is made on first start, kept on the next, and its keys are readable by the owner only', async () => {
    const first = await ensureLocalTls(dir, home, now);
    expect(first.made).toBe('ca');
    const again = await ensureLocalTls(dir, home, at(1));
    expect(again.made).toBe('nothing');
    expect(again.server).toEqual(first.server);
    expect(again.caCert).toBe(first.caCert);
    for (const key of ['ca.key', 'server.key']) expect((await stat(path.join(dir, key))).mode & 0o777).toBe(0o600);
  });

  test('a new address gets a new server certificate from the same CA (phones keep trusting it)', async () => {
    const before = await files();
    const moved = { ...home, ips: [...home.ips, '10.0.0.42'] };
    const result = await ensureLocalTls(dir, moved, at(2));
    expect(result.made).toBe('server');
    const after = await files();
    expect(after.ca).toBe(before.ca);
    expect(after.server).not.toBe(before.server);
    expect(certificateFacts(after.server).covers(moved)).toBe(true);
    expect(certificateFacts(after.server).signedBy(after.ca)).toBe(true);
  });

  test('the server certificate is made again once two thirds of its life have passed, not before', async () => {
    const moved = { ...home, ips: [...home.ips, '10.0.0.42'] };
    const { server } = await files();
    const facts = certificateFacts(server);
    const twoThirds = new Date(facts.notBefore.getTime() + ((facts.notAfter.getTime() - facts.notBefore.getTime()) * 2) / 3);
    expect(renewalDue(facts, new Date(twoThirds.getTime() - 60_000))).toBe(false);
    expect(renewalDue(facts, twoThirds)).toBe(true);
    expect((await ensureLocalTls(dir, moved, new Date(twoThirds.getTime() - 60_000))).made).toBe('nothing');
    const renewed = await ensureLocalTls(dir, moved, twoThirds);
    expect(renewed.made).toBe('server');
    expect(certificateFacts(renewed.server.cert).notAfter.getTime()).toBeGreaterThan(facts.notAfter.getTime());
  });

  test('a name the CA may not sign for, or a CA near its end, makes a new CA', async () => {
    const { ca } = await files();
    // A public address appeared (not one of the home network's ranges, nor one the CA was made for).
    const publicAddress = await ensureLocalTls(dir, { ...home, ips: [...home.ips, '203.0.113.9'] }, at(3));
    expect(publicAddress.made).toBe('ca');
    expect(publicAddress.caCert).not.toBe(ca);
    expect(permits(permittedNames(publicAddress.caCert)!, { dns: [], ips: ['203.0.113.9'] })).toBe(true);
    const caEnd = certificateFacts(publicAddress.caCert).notAfter;
    expect((await ensureLocalTls(dir, { ...home, ips: [...home.ips, '203.0.113.9'] }, new Date(caEnd.getTime() - 399 * DAY))).made).toBe('ca');
  });

  test('damaged or mismatched files are made afresh instead of served', async () => {
    await writeFile(path.join(dir, 'server.crt'), 'not a certificate');
    expect((await ensureLocalTls(dir, home, now)).made).toBe('server');
    // A crash between writing the key and the certificate leaves a pair that does not belong together.
    const other = await issueServerCertificate(await makeCa('x', home), home);
    await writeFile(path.join(dir, 'server.key'), other.key);
    const result = await ensureLocalTls(dir, home, now);
    expect(result.made).toBe('server');
    expect(certificateFacts(result.server.cert).matches(result.server.key)).toBe(true);
  });
});

describe('the operator\'s certificate files (--tls-cert, --tls-key)', () => {
  let dir: string;
  let pair: Pem;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-tls-files-'));
    pair = await issueServerCertificate(await makeCa('files', home), home);
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** Writes the two files and resolves with what reading them gives: the pair, or the error's code and message. */
  async function read(cert: string, key: string): Promise<Pem | { code: string; message: string }> {
    await writeFile(path.join(dir, 'cert.pem'), cert);
    await writeFile(path.join(dir, 'key.pem'), key);
    try {
      return await readCertificateFiles(path.join(dir, 'cert.pem'), path.join(dir, 'key.pem'));
    } catch (err) {
      if (!isFerryError(err)) throw err;
      return { code: err.code, message: err.message };
    }
  }

  test('a certificate and its own key are served as they are', async () => {
    expect(await read(pair.cert, pair.key)).toEqual(pair);
  });

  test('a missing file, text that is not PEM, or a key of another certificate is config/tls-files, naming the files and the fix', async () => {
    await expect(readCertificateFiles(path.join(dir, 'absent.pem'), path.join(dir, 'key.pem'))).rejects.toMatchObject({ code: 'config/tls-files', message: expect.stringMatching(/absent\.pem.*give readable PEM files with --tls-cert and --tls-key/) });
    expect(await read('not a certificate', pair.key)).toEqual({ code: 'config/tls-files', message: expect.stringMatching(/cert\.pem or .*key\.pem is not a PEM certificate and private key/) });
    expect(await read(pair.cert, 'not a key')).toEqual({ code: 'config/tls-files', message: expect.stringMatching(/is not a PEM certificate and private key/) });
    const other = await issueServerCertificate(await makeCa('other', home), home);
    expect(await read(pair.cert, other.key)).toEqual({ code: 'config/tls-files', message: expect.stringMatching(/key\.pem is not the key of the certificate .*cert\.pem: give the pair that belongs together/) });
  });
});

describe('the machine\'s names', () => {
  const interfaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
    eth0: [
      { address: 'fe80::1', family: 'IPv6', internal: false },
      { address: 'fd00::7', family: 'IPv6', internal: false },
      { address: '192.168.1.20', family: 'IPv4', internal: false },
    ],
    docker0: [{ address: '172.17.0.1', family: 'IPv4', internal: false }],
  } as unknown as NodeJS.Dict<os.NetworkInterfaceInfo[]>;

  test('cover the host name, its .local form, loopback and every reachable address, plus a chosen name', () => {
    expect(machineNames(['ferry.test'], interfaces, 'Laptop')).toEqual({
      dns: ['localhost', 'laptop', 'laptop.local', 'ferry.test'],
      ips: ['127.0.0.1', '::1', '192.168.1.20', '172.17.0.1', 'fd00::7'],
    });
    expect(machineNames(['[fd00::9]'], interfaces, 'nas.home.arpa').dns).toEqual(['localhost', 'nas.home.arpa']);
    expect(machineNames(['[fd00::9]'], interfaces, 'nas.home.arpa').ips).toContain('fd00::9');
  });

  test('the LAN address is a private IPv4 address; loopback names are recognised', () => {
    expect(lanAddress(interfaces)).toBe('192.168.1.20');
    expect(lanAddress({ lo: interfaces.lo })).toBeUndefined();
    for (const h of ['localhost', '127.0.0.1', '::1', '[::1]', 'app.localhost']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '192.168.1.20', 'ferry.test']) expect(isLoopbackHost(h)).toBe(false);
  });
});
