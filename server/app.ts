import Fastify, { type FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import websocket from '@fastify/websocket';
import { access, mkdir, writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../src/core/errors.ts';
import type { RelayConfig } from './config.ts';
import { ferryVersion } from './version.ts';
import { relayApi } from './api/index.ts';
import { RelayMetrics, registerMetrics } from './api/metrics.ts';
import { registerSecurity } from './api/security.ts';
import { RelayStore } from './relay/relay-store.ts';
import { EmbeddedWorker } from './relay/cloud-worker.ts';
import { openComponentLibrary } from './relay/component-library.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { errorBody, installErrorHandling } from './relay/errors.ts';

/**
 * Every response is cross-origin isolated so wllama can use SharedArrayBuffer threads; same-origin resources
 * stay loadable under COEP because they are same-origin.
 */
const isolationHeaders = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
} as const;

/** Files that must never be served stale: the shell's entry points and the service worker that caches the rest. */
const revalidate = new Set(['index.html', 'sw.js', 'manifest.webmanifest', 'registerSW.js']);

declare module 'fastify' {
  interface FastifyInstance {
    relayStore: RelayStore;
  }
}

export interface Relay {
  app: FastifyInstance;
  /** The URL it listens on, once started. */
  url: string;
  close(): Promise<void>;
}

/** Checks the data folder is usable before anything depends on it; says what to do when it is not. */
async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true });
    const probe = path.join(dataDir, `.write-test-${process.pid}`);
    await writeFile(probe, 'ok');
    await rm(probe);
  } catch (cause) {
    throw new FerryError('config/data-dir', `Cannot write to the data folder ${dataDir}: choose a writable folder with --data or FERRY_DATA.`, { cause });
  }
}

async function requireBuiltPwa(staticDir: string): Promise<void> {
  try {
    await access(path.join(staticDir, 'index.html'));
  } catch (cause) {
    throw new FerryError('config/pwa-not-built', `The PWA is not built (no index.html in ${staticDir}): run \`npm run build\`, or \`npm start\` which builds it.`, { cause });
  }
}

export async function buildRelay(config: RelayConfig): Promise<FastifyInstance> {
  await prepareDataDir(config.dataDir);
  await requireBuiltPwa(config.staticDir);
  const startedAt = Date.now();
  const app = Fastify({
    logger: { level: config.logLevel },
    // Bodies of the API are small JSON; object uploads get their own explicit limits where they are defined.
    bodyLimit: 1024 * 1024,
  });

  app.addHook('onSend', async (_request, reply) => {
    reply.headers(isolationHeaders);
  });
  installErrorHandling(app);

  const store = await RelayStore.open(config.dataDir);
  app.addHook('onClose', async () => store.close());
  // For benchmarks and operator tools in the same process; requests never reach it except through the API.
  app.decorate('relayStore', store);
  const metrics = new RelayMetrics();
  const security = { allowOrigins: config.allowOrigins, rateLimitPerMinute: config.rateLimitPerMinute };
  await registerSecurity(app, security);
  // One WebSocket server for every streaming route (run events today); clients only listen, so frames are small.
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  registerMetrics(app, metrics);
  const engine = config.model ? await serveModel(app, config.model, path.join(config.dataDir, 'llm-tmp')) : undefined;
  const worker = engine && config.embeddedWorker
    ? new EmbeddedWorker({ engine, components: await openComponentLibrary(config.componentDirs), runs: store.runs, relayUrl: () => ownUrl(app) })
    : undefined;
  // Runs end (checkpointed and published) before the engine they use goes away.
  if (worker) app.addHook('preClose', async () => worker.close());
  await app.register(relayApi, { store, metrics, security, maxObjectBytes: config.maxObjectBytes, worker });

  app.get('/healthz', async () => ({
    status: 'ok',
    version: ferryVersion,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
  }));

  await app.register(fastifyStatic, {
    root: config.staticDir,
    wildcard: false,
    cacheControl: false,
    setHeaders(reply, filePath) {
      const name = path.relative(config.staticDir, filePath);
      // Hashed build assets never change; everything else is revalidated so an update reaches the service worker.
      void reply.header('cache-control', name.startsWith('assets/') ? 'public, max-age=31536000, immutable' : revalidate.has(name) ? 'no-cache' : 'public, max-age=3600');
      if (name.endsWith('.webmanifest')) void reply.header('content-type', 'application/manifest+json');
    },
  });

  // Share links: the PWA reads the snapshot id from the path and the key from the #fragment, which never reaches us.
  app.get('/s/:id', (_request, reply) => reply.header('cache-control', 'no-cache').sendFile('index.html'));

  // The app routes in the browser (#/s/<id>, /s/<id> share links): any other page navigation gets the shell.
  app.setNotFoundHandler((request, reply) => {
    const wantsPage = request.method === 'GET' && (request.headers.accept ?? '').includes('text/html');
    const reserved = /^\/(api|v1|healthz|metrics)(\/|$)/.test(request.url);
    if (wantsPage && !reserved) {
      void reply.header('cache-control', 'no-cache').sendFile('index.html');
      return;
    }
    void reply.code(404).send(errorBody('http/not-found', `No such resource: ${request.method} ${request.url.slice(0, 200)}.`));
  });

  return app;
}

/** Hosts a GGUF model with node-llama-cpp behind the OpenAI-compatible /v1 API (loaded only when configured). */
async function serveModel(app: FastifyInstance, modelPath: string, tempDir: string): Promise<Engine> {
  const [{ createNodeLlamaEngine }, { openAiApi }] = await Promise.all([import('./llm/node-llama-engine.ts'), import('./api/openai.ts')]);
  await mkdir(tempDir, { recursive: true });
  const engine = await createNodeLlamaEngine({ modelPath, tempDir });
  app.addHook('onClose', async () => engine.dispose());
  await app.register(openAiApi, { engine });
  return engine;
}

/** The relay's own address, for its embedded worker to call its API over loopback. */
function ownUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (!address || typeof address !== 'object') throw new FerryError('relay/not-listening', 'The relay is not listening yet.');
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Builds the relay and listens; the caller owns shutdown. */
export async function startRelay(config: RelayConfig): Promise<Relay> {
  const app = await buildRelay(config);
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return { app, url: `http://${host}:${port}`, close: () => app.close() };
}
