/** An in-process relay on a loopback port with its own data folder, and a session to publish, for the relay tests. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildRelay } from '../../../server/app.ts';
import { defaultConfig, type RelayConfig } from '../../../server/config.ts';
import { PAGE_SIZE, Session } from '../../../src/core/session/index.ts';
import type { Store } from '../../../src/core/store/index.ts';
import { chatStep, patternImage, testLlm } from '../../support/session-fixtures.ts';

export interface TestRelay {
  app: FastifyInstance;
  url: string;
  config: RelayConfig;
  /** Closes this instance and starts another on the same data folder (a relay restart). */
  restart(): Promise<TestRelay>;
  close(): Promise<void>;
}

export async function makeTempDirs(): Promise<{ root: string; staticDir: string; dataDir: string; cleanup(): Promise<void> }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-relay-api-'));
  const staticDir = path.join(root, 'dist');
  await mkdir(staticDir, { recursive: true });
  await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>shell</title>');
  // A relay closed while its model still loads may write a file during the removal: retry (ENOTEMPTY) a few times.
  return { root, staticDir, dataDir: path.join(root, 'data'), cleanup: () => rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }) };
}

export async function startTestRelay(overrides: Partial<RelayConfig> & Pick<RelayConfig, 'staticDir' | 'dataDir'>): Promise<TestRelay> {
  const config: RelayConfig = { ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, ...overrides };
  const app = await buildRelay(config);
  await app.listen({ host: config.host, port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const relay: TestRelay = {
    app,
    url: `http://127.0.0.1:${port}`,
    config,
    async restart() {
      await app.close();
      return startTestRelay(config);
    },
    close: () => app.close(),
  };
  return relay;
}

/** Distinctive text that must never appear in the relay's files. */
export const SECRET_TEXT = 'zebra-quartz-plaintext-marker';

/** A session with a 4-page component image and `steps` chat steps, each touching the image a little. */
export async function writeSession(store: Store, steps: number): Promise<{ session: Session; image: Uint8Array }> {
  let image = patternImage(4 * PAGE_SIZE, 7);
  const session = await Session.create(store, { llm: testLlm, components: { vm: image } });
  image = await appendSteps(session, image, 0, steps);
  return { session, image };
}

export async function appendSteps(session: Session, image: Uint8Array, from: number, count: number): Promise<Uint8Array> {
  for (let n = from; n < from + count; n++) {
    image = image.slice();
    image.set(patternImage(200, n + 11), (n * 7919) % (image.length - 200));
    const step = chatStep(n, { vm: image });
    step.events.push({ type: 'user', text: `${SECRET_TEXT} ${n}`, at: 1_700_000_100_000 + n });
    await session.append(step);
  }
  return image;
}
