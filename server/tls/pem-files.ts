/** Certificates and keys as PEM files: the operator's (--tls-cert/--tls-key), and those kept in the data folder. */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { FerryError } from '../../src/core/errors.ts';
import { certificateFacts, type Pem } from './certificates.ts';

/** A certificate and its key, or undefined when either is missing, unreadable or not the other's (it is then made afresh). */
export async function readPem(certFile: string, keyFile: string): Promise<Pem | undefined> {
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    return certificateFacts(cert).matches(key) ? { cert, key } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Key, then certificate, each written whole and renamed into place: a crash between the two leaves a pair that does
 * not match, which readPem refuses, so it is made again rather than served broken.
 */
export async function writePem(certFile: string, keyFile: string, pem: Pem): Promise<void> {
  for (const [file, text, mode] of [[keyFile, pem.key, 0o600], [certFile, pem.cert, 0o644]] as const) {
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, text, { mode });
    await rename(temp, file);
  }
}

/** The operator's certificate and key, checked to be a PEM pair that belongs together; else config/tls-files with the fix. */
export async function readCertificateFiles(certFile: string, keyFile: string): Promise<Pem> {
  let pem: Pem;
  try {
    pem = { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  } catch (cause) {
    throw new FerryError('config/tls-files', `Cannot read the certificate ${certFile} or its key ${keyFile}: give readable PEM files with --tls-cert and --tls-key (FERRY_TLS_CERT, FERRY_TLS_KEY).`, { cause });
  }
  let matches: boolean;
  try {
    matches = certificateFacts(pem.cert).matches(pem.key);
  } catch (cause) {
    throw new FerryError('config/tls-files', `${certFile} or ${keyFile} is not a PEM certificate and private key: give the certificate (with its chain) in --tls-cert and its key in --tls-key.`, { cause });
  }
  if (!matches) throw new FerryError('config/tls-files', `The key ${keyFile} is not the key of the certificate ${certFile}: give the pair that belongs together.`);
  return pem;
}
