/**
 * A published session run on a RunHost as the relay would assign it: the session key sealed to the host, the input
 * sealed with the session's keys; resolves with the run's events (opened) once it ends.
 */
import { randomBytes } from 'node:crypto';
import type { RunHost, RunEvent } from '../../src/core/host/run-host.ts';
import { RunEventReader, sealRunInput, sealedKeyFor, type PublishResult } from '../../src/core/protocol/index.ts';
import { deriveSessionKeys } from '../../src/core/snapshot/index.ts';

export async function runOnHost(host: RunHost, published: PublishResult, input: Parameters<typeof sealRunInput>[2], maxTokens?: number): Promise<{ events: RunEvent[]; status: string; error?: { code: string } }> {
  const id = randomBytes(16).toString('hex');
  const reader = await RunEventReader.for(published.key, id);
  const keys = await deriveSessionKeys(published.key);
  const request = {
    snapshot: published.snapshot.id,
    key: await sealedKeyFor(host.publicKey, published.key, published.snapshot.id),
    writeToken: published.writeToken,
    input: await sealRunInput(keys, published.snapshot.id, input),
    ...(maxTokens === undefined ? {} : { maxTokens }),
  };
  const events: RunEvent[] = [];
  let opened: Promise<void> = Promise.resolve();
  return new Promise((resolve) => {
    host.start(id, request, {
      emit(sealed) {
        opened = opened.then(async () => void events.push((await reader.open(sealed)) as RunEvent));
      },
      finish: (status, error) => void opened.then(() => resolve({ events, status, ...(error ? { error } : {}) })),
    });
  });
}
