/**
 * The worker token: what `ferry worker` processes attach to a relay with. Given by the operator
 * (--worker-token / FERRY_WORKER_TOKEN), or made once and kept in <data>/worker-token (mode 0600), so a worker on
 * the same machine finds it in the same data folder and one elsewhere is given it by whoever runs both.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import { checkWorkerToken } from '../config.ts';
import { hashToken, tokenMatches } from './tokens.ts';

export const WORKER_TOKEN_FILE = 'worker-token';

export const workerTokenPath = (dataDir: string): string => path.join(dataDir, WORKER_TOKEN_FILE);

/** The configured token, else the one in the data folder, else a new one written there. */
export async function loadWorkerToken(dataDir: string, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  const file = workerTokenPath(dataDir);
  const kept = await readWorkerToken(dataDir);
  if (kept) return kept;
  const token = randomBytes(32).toString('base64url');
  try {
    // 'wx': two relays starting on one folder never overwrite each other's token.
    await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (cause) {
    const raced = await readWorkerToken(dataDir);
    if (raced) return raced;
    throw new FerryError('config/data-dir', `Cannot write the worker token to ${file}: choose a writable data folder (--data).`, { cause });
  }
  return token;
}

/** The token kept in a data folder, if there is a valid one. */
export async function readWorkerToken(dataDir: string): Promise<string | undefined> {
  const text = await readFile(workerTokenPath(dataDir), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  return checkWorkerToken(text.trim());
}

/** Constant-time (see tokens.ts). */
export const workerTokenMatches = (given: string, expected: string): boolean => tokenMatches(given, hashToken(expected));
