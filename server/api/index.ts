/**
 * The relay's HTTP API under /api/v2, in one encapsulated plugin: requests from foreign origins are refused here
 * (CORS and rate limits are registered app-wide in app.ts), and every body is validated by the routes.
 */
import type { FastifyInstance } from 'fastify';
import type { RelayStore } from '../relay/relay-store.ts';
import type { RelayMetrics } from './metrics.ts';
import { objectRoutes } from './objects.ts';
import { refuseForeignOrigins, type SecurityOptions } from './security.ts';
import { snapshotRoutes } from './snapshots.ts';
import { runRoutes } from './runs.ts';
import type { RunDispatch } from '../relay/run-dispatch.ts';
import { workerRoutes } from './workers.ts';
import type { ServingEngines } from '../relay/worker-engines.ts';
import type { RelayInfo, VerifyTimeout } from '../../src/core/protocol/index.ts';
import { infoRoutes } from './info.ts';
import type { AddressPolicy } from '../web/address-policy.ts';
import { urlFetchRoutes } from './url-fetch.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { verifyRoutes } from './verify.ts';
import { componentRoutes } from './components.ts';
import type { ComponentLibrary } from '../relay/component-library.ts';

export interface ApiOptions {
  store: RelayStore;
  metrics: RelayMetrics;
  security: SecurityOptions;
  maxObjectBytes: number;
  dispatcher: RunDispatch;
  /** The /v1 API's engines: attached cloud workers join it. */
  engines: ServingEngines;
  workerToken: string;
  heartbeatMs: number;
  /** How other devices reach the relay (GET /api/v2/info). */
  info: () => RelayInfo;
  /** Which addresses the relay fetches sources from for browsers. */
  fetchPolicy: AddressPolicy;
  /** The component builds the relay ships (its workers run them; hosts that lack one fetch it here). */
  components: ComponentLibrary;
  /** The engine that verifies devices' drafts (the relay's own model); undefined without one. */
  verifier?: () => Promise<Engine>;
  /** How long a device's verify round may wait (default VERIFY_TIMEOUT). */
  verifyTimeout?: VerifyTimeout | undefined;
}

export async function relayApi(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  refuseForeignOrigins(app, opts.security);
  await app.register(objectRoutes, { store: opts.store, metrics: opts.metrics, maxObjectBytes: opts.maxObjectBytes });
  await app.register(snapshotRoutes, {
    store: opts.store,
    metrics: opts.metrics,
    // Publishing creates a record kept forever: a tenth of the general budget.
    publishPerMinute: Math.ceil(opts.security.rateLimitPerMinute / 10),
    mayPublish: (run, attempt, snapshot) => opts.dispatcher.mayPublish(run, attempt, snapshot),
  });
  await app.register(runRoutes, { store: opts.store, runs: opts.store.runs, dispatcher: opts.dispatcher });
  await app.register(infoRoutes, { info: opts.info });
  await app.register(componentRoutes, { library: opts.components });
  // Each fetch reaches out to the web for a browser: a tenth of the general budget, as for publishing.
  await app.register(urlFetchRoutes, { policy: opts.fetchPolicy, perMinute: Math.ceil(opts.security.rateLimitPerMinute / 10) });
  await app.register(verifyRoutes, { engine: opts.verifier, workers: opts.engines, ...(opts.verifyTimeout ? { timeout: opts.verifyTimeout } : {}) });
  await app.register(workerRoutes, { dispatcher: opts.dispatcher, engines: opts.engines, workerToken: opts.workerToken, heartbeatMs: opts.heartbeatMs });
}
