/**
 * A relay that closes while a request is in flight answers it and closes that connection, rather than holding it
 * open for the keep-alive timeout (72 s) and its own close() with it (server/app.ts).
 */
import { describe, expect, test } from 'vitest';
import { buildRelay } from '../../server/app.ts';
import { defaultConfig } from '../../server/config.ts';
import { waitFor } from '../support/wait.ts';
import { makeTempDirs } from './api/relay-harness.ts';

describe('closing the relay', () => {
  test('a request in flight is answered, its connection closed, and close() does not wait on it', async () => {
    const dirs = await makeTempDirs();
    const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, staticDir: dirs.staticDir, dataDir: dirs.dataDir });
    // A route that answers only when the test says, so the relay's close starts while it is in flight.
    let answer!: () => void;
    let arrived = false;
    app.get('/test/held', async () => {
      arrived = true;
      await new Promise<void>((resolve) => (answer = resolve));
      return { ok: true };
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const response = fetch(`http://127.0.0.1:${port}/test/held`);
      await waitFor('the request to arrive', () => arrived);
      const closed = app.close();
      // The close has begun (the relay no longer listens) before the answer goes.
      await waitFor('the relay to stop listening', () => !app.server.listening);
      answer();
      const res = await response;
      expect(await res.json()).toEqual({ ok: true });
      expect(res.headers.get('connection')).toBe('close');
      // Without the header the connection stays open, idle, for 72 s, and this waits for it (past the test's timeout).
      await closed;
    } finally {
      await dirs.cleanup();
    }
  });
});
