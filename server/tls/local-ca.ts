/**
 * A certificate authority of the relay's own, for a home network without a domain: made on first start in
 * <data>/tls (ca.key, ca.crt), trusted once on each phone, and a server certificate it signs for the machine's
 * names (server.key, server.crt), made again when those names change or it nears expiry. The CA itself is kept
 * (phones trust it) unless it cannot sign for the names the relay now needs, or nears its own expiry.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { certificateFacts, issueServerCertificate, makeCa, permits, permittedNames, renewalDue, type Names, type Pem } from './certificates.ts';
import { readPem, writePem } from './pem-files.ts';

export interface LocalTls {
  /** The server's certificate and key (PEM). */
  server: Pem;
  /** The CA certificate (PEM) phones install. */
  caCert: string;
  /** What changed on this call: nothing, a new server certificate, or a new CA (phones must trust it again). */
  made: 'nothing' | 'server' | 'ca';
}

const DAY = 86_400_000;

/** A CA with less than this left is replaced (its server certificates would outlive it). */
const CA_MARGIN_DAYS = 400;

export const localTlsDir = (dataDir: string): string => path.join(dataDir, 'tls');

/** Reads or makes the CA and a server certificate covering `names`. */
export async function ensureLocalTls(dir: string, names: Names, now = new Date()): Promise<LocalTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = { caKey: path.join(dir, 'ca.key'), caCert: path.join(dir, 'ca.crt'), key: path.join(dir, 'server.key'), cert: path.join(dir, 'server.crt') };
  let ca = await readPem(files.caCert, files.caKey);
  let made: LocalTls['made'] = 'nothing';
  if (!ca || !caUsable(ca.cert, names, now)) {
    ca = await makeCa(os.hostname(), names, now);
    await writePem(files.caCert, files.caKey, ca);
    made = 'ca';
  }
  let server = await readPem(files.cert, files.key);
  if (!server || made === 'ca' || !serverUsable(server.cert, ca.cert, names, now)) {
    server = await issueServerCertificate(ca, names, now);
    await writePem(files.cert, files.key, server);
    if (made === 'nothing') made = 'server';
  }
  return { server, caCert: ca.cert, made };
}

function caUsable(cert: string, names: Names, now: Date): boolean {
  const facts = certificateFacts(cert);
  const permitted = permittedNames(cert);
  return facts.notAfter.getTime() - now.getTime() > CA_MARGIN_DAYS * DAY && (!permitted || permits(permitted, names));
}

function serverUsable(cert: string, caCert: string, names: Names, now: Date): boolean {
  const facts = certificateFacts(cert);
  return facts.signedBy(caCert) && facts.covers(names) && !renewalDue(facts, now);
}
