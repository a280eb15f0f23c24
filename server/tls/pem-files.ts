/** Certificates and keys kept in the data folder as PEM files. */
import { readFile, rename, writeFile } from 'node:fs/promises';
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
