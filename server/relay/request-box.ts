/**
 * A run's start request (it holds the session key and the snapshot's write token) as replicas keep it in Postgres:
 * sealed with AES-256-GCM under a key derived from the worker token, which every replica of a deployment shares
 * and the database never sees. A copy of the database alone opens no session. Version byte first, fresh IV each.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import * as v from 'valibot';
import { FerryError } from '../../src/core/errors.ts';
import { StartRunRequestSchema, type StartRunRequest } from '../../src/core/protocol/index.ts';

const VERSION = 1;

export class RequestBox {
  private readonly key: Buffer;

  constructor(workerToken: string) {
    this.key = Buffer.from(hkdfSync('sha256', Buffer.from(workerToken, 'utf8'), Buffer.alloc(0), 'ferry run requests v1', 32));
  }

  seal(request: StartRunRequest, run: string): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    // The run id is bound in: a sealed request cannot be moved onto another run.
    cipher.setAAD(Buffer.from(run, 'utf8'));
    const body = Buffer.concat([cipher.update(JSON.stringify(request), 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
  }

  open(sealed: Uint8Array, run: string): StartRunRequest {
    const bytes = Buffer.from(sealed);
    try {
      if (bytes[0] !== VERSION) throw new Error(`version ${bytes[0]}`);
      const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(1, 13));
      decipher.setAAD(Buffer.from(run, 'utf8'));
      decipher.setAuthTag(bytes.subarray(13, 29));
      const text = Buffer.concat([decipher.update(bytes.subarray(29)), decipher.final()]).toString('utf8');
      return v.parse(StartRunRequestSchema, JSON.parse(text));
    } catch (cause) {
      throw new FerryError('relay/bad-claim', `Run ${run}'s request cannot be opened by this replica: every replica of a deployment must share one worker token (--worker-token).`, { cause });
    }
  }
}
