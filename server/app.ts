import Fastify, { type FastifyInstance, type FastifyServerFactory } from 'fastify';
import fastifyStatic from '@fastify/static';
import websocket from '@fastify/websocket';
import { access, mkdir, writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { FerryError, isFerryError } from '../src/core/errors.ts';
import { downloadProgress } from './llm/open-model.ts';
import type { ResolvedModel } from './llm/models.ts';
import { demoModelSha256 } from './llm/demo-model.ts';
import { DEMO_MODEL, ModelCatalog } from '../src/core/llm/catalog.ts';
import type { RelayConfig } from './config.ts';
import { ferryVersion } from './version.ts';
import { relayApi } from './api/index.ts';
import { RelayMetrics, registerMetrics } from './api/metrics.ts';
import { registerSecurity } from './api/security.ts';
import { RelayStore } from './relay/relay-store.ts';
import { RunHost } from '../src/core/host/run-host.ts';
import { openComponentLibrary } from './relay/component-library.ts';
import { Dispatcher } from './relay/dispatcher.ts';
import type { RunDispatch } from './relay/run-dispatch.ts';
import { ServingEngines } from './relay/worker-engines.ts';
import { openAiApi } from './api/openai.ts';
import { registerCatalogRoute } from './api/catalog.ts';
import { loadWorkerToken } from './relay/worker-token.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { RUN_EVENTS_PROTOCOL, createWorkerKeys, type WorkerProfile } from '../src/core/protocol/index.ts';
import { measureProfile } from '../src/core/host/measure-profile.ts';
import { errorBody, installErrorHandling } from './relay/errors.ts';
import { openNodeSocket } from './worker/remote.ts';
import { FsBackend } from './store/index.ts';
import { prepareTls } from './tls/index.ts';
import { relayInfo } from './api/info.ts';
import { isLoopbackHost, isWildcardHost, machineNames } from './tls/machine-names.ts';
import { threadedTools } from './runtime/node-tools.ts';
import { addressPolicy } from './web/address-policy.ts';

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
  const tls = await prepareTls(config);
  const startedAt = Date.now();
  const app = Fastify({
    logger: { level: config.logLevel },
    // Bodies of the API are small JSON; object uploads get their own explicit limits where they are defined.
    bodyLimit: 1024 * 1024,
    // With TLS: HTTPS, and plain HTTP on the same port (this machine's own clients, and a redirect or explanation for others).
    ...(tls ? { serverFactory: tls.serverFactory as unknown as FastifyServerFactory } : {}),
    // Ids are validated by the routes, which say what is wrong; the router's own limit would answer 414 itself.
    routerOptions: { maxParamLength: 4096 },
    // Registering the routes compiles their schemas: on a loaded two-core machine that can take more than Fastify's 10 s.
    pluginTimeout: 60_000,
  });
  if (tls) {
    tls.register(app);
    app.addHook('onListen', async () => tls.start(app));
  }

  // A request in flight when the relay starts closing would hold its connection open for the keep-alive timeout (72 s)
  // after its answer, and close() with it: answers sent while closing close their connection.
  let closing = false;
  app.addHook('preClose', async () => void (closing = true));
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(isolationHeaders);
    if (closing) void reply.header('connection', 'close');
  });
  installErrorHandling(app);

  const store = await RelayStore.open(config.dataDir, config.shared);
  app.addHook('onClose', async () => store.close());
  // For benchmarks and operator tools in the same process; requests never reach it except through the API.
  app.decorate('relayStore', store);
  const metrics = new RelayMetrics();
  // Names this relay answers to besides localhost and IP literals: the operator's, the public URL's, and this machine's own
  // (its host name and name.local, which phones on the network use and a rebinding page cannot claim).
  const ownNames = [...(config.publicUrl ? [new URL(config.publicUrl).hostname] : []), ...machineNames().dns];
  const security = { allowOrigins: config.allowOrigins, allowHosts: [...config.allowHosts, ...ownNames], rateLimitPerMinute: config.rateLimitPerMinute };
  await registerSecurity(app, security);
  // One WebSocket server for every streaming route: run events (clients only listen) and attached workers, whose
  // messages are run events too — a generation's token ids can take a few hundred KB.
  await app.register(websocket, {
    options: {
      maxPayload: 1024 * 1024,
      // A run's event stream is opened with its subprotocol (and the capability beside it, which is never echoed).
      handleProtocols: (offered) => (offered.has(RUN_EVENTS_PROTOCOL) ? RUN_EVENTS_PROTOCOL : false),
    },
  });
  registerMetrics(app, metrics);
  const workerToken = await loadWorkerToken(config.dataDir, config.workerToken);
  const dispatcher = await openDispatcher(store, workerToken, app.log);
  // The OpenAI-compatible /v1 API, served by the relay's own engine and by every attached cloud worker's.
  const engines = new ServingEngines();
  const catalog = config.catalogFile ? await (await import('./llm/models.ts')).loadCatalog(config.catalogFile) : new ModelCatalog();
  registerCatalogRoute(app, catalog);
  const hosted = config.model ? await serveModel(app, config.model, config.dataDir, engines, catalog) : undefined;
  await app.register(async (scope) => {
    // The first /v1 request waits for the relay's own model to load (it starts loading once the relay listens).
    if (hosted) scope.addHook('onRequest', async () => void (await hosted.load()));
    await scope.register(openAiApi, { engines, names: modelNames(catalog, hosted?.model) });
  });
  // Served to hosts (api/components.ts) and run by the embedded worker.
  const components = await openComponentLibrary(config.componentDirs);
  let embedded: RunHost | undefined;
  if (hosted && config.embeddedWorker) {
    const coming = dispatcher.expect();
    // Runs started while the model loads wait for this worker; it attaches as soon as the engine is up.
    hosted.ready.then(async (engine) => {
      const price = config.workerPrice;
      const measured = await measureProfile(engine, { name: 'embedded', slots: slotsOf(engine) });
      const profile = price ? { ...measured, price } : measured;
      if (hosted.closed) return;
      const attached: { id?: string } = {};
      embedded = new RunHost({ engine, keys: await createWorkerKeys(), load: (id) => components.load(id), hasBuild: (id) => components.ids.has(id), startTool: threadedTools(), relayUrl: () => ownUrl(app), kv: { prefillTps: profile.prefillTps }, self: () => attached.id, openSocket: openNodeSocket, log: (message, details) => app.log.info(details, message), ...(price ? { price } : {}) });
      attached.id = await attachEmbedded(dispatcher, embedded, profile);
      coming.attached();
    }).catch((err: unknown) => {
      app.log.error({ err }, 'the embedded cloud worker could not start');
      coming.failed(isFerryError(err) ? { code: err.code, message: err.message } : { code: 'relay/worker-failed', message: String(err) });
    });
  }
  app.addHook('preClose', async () => {
    await dispatcher.close();
    // Runs end (checkpointed and published) before the engine they use goes away.
    await embedded?.close();
  });
  await app.register(relayApi, { store, metrics, security, maxObjectBytes: config.maxObjectBytes, dispatcher, engines, workerToken, heartbeatMs: config.heartbeatMs, components, info: () => relayInfo(config, listeningPort(app), { caName: tls?.caName() }), fetchPolicy: addressPolicy(config.fetchAllow, { localRelay: isLoopbackHost(config.host) }), ...(hosted ? { verifier: () => hosted.load() } : {}), verifyTimeout: config.verifyTimeout });

  // Each dependency checked now: a load balancer takes a replica out while its database or object storage is down.
  app.get('/healthz', async (_request, reply) => {
    const dependencies = await store.health();
    const ok = Object.values(dependencies).every((d) => d.status === 'ok');
    void reply.code(ok ? 200 : 503).header('cache-control', 'no-store');
    return {
      status: ok ? 'ok' : 'unavailable',
      version: ferryVersion,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      backend: config.shared ? 'shared' : 'embedded',
      // Which replica answered (shared backends): its claims in Postgres name it so.
      ...(dispatcher.replica ? { replica: dispatcher.replica } : {}),
      dependencies,
    };
  });

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

/**
 * Hosts a GGUF model (a path, URL or hf: reference, fetched once into <data>/models) with node-llama-cpp: the
 * embedded worker's engine, also behind /v1. The reference is resolved and checked before the relay listens (a
 * wrong path stops it with the fix); llama.cpp is imported and loads the model once the relay listens (about a
 * second of the main thread, and more for a large model, that would otherwise delay it), or at the first `load()`.
 */
async function serveModel(app: FastifyInstance, spec: string, dataDir: string, engines: ServingEngines, catalog: ModelCatalog): Promise<{ model: ResolvedModel; ready: Promise<Engine>; load(): Promise<Engine>; closed: boolean }> {
  const [{ resolveModel }, { openModelEngine, hostedModelFile }, { modelFileRoutes }] = await Promise.all([
    import('./llm/models.ts'),
    import('./llm/open-model.ts'),
    import('./api/model-files.ts'),
  ]);
  const log = (message: string): void => app.log.info(message);
  const model = await resolveModel(spec, { dataDir, catalog, onProgress: downloadProgress(log), ...(process.env.HF_TOKEN ? { hfToken: process.env.HF_TOKEN } : {}) });
  // Browsers download the same file from here (issue 5), so a device without internet runs the relay's model.
  await app.register(modelFileRoutes, { models: [await hostedModelFile(model)] });
  let start!: () => void;
  const started = new Promise<void>((resolve) => (start = resolve));
  let loaded: Engine | undefined;
  const ready = started.then(() => openModelEngine(model, dataDir)).then((e) => (loaded = e));
  ready.catch(() => undefined);
  engines.setOwn(() => loaded);
  const hosted = { model, ready, load: () => (start(), ready), closed: false };
  app.addHook('onListen', async () => start());
  app.addHook('onClose', async () => {
    hosted.closed = true;
    // A close during the load does not wait for it: that engine is freed whenever it arrives.
    if (loaded) await loaded.dispose();
    else void ready.then((e) => e.dispose(), () => undefined);
  });
  return hosted;
}

/**
 * The names /v1/models lists engines' models under (their ids are SHA-256s of GGUF files): the relay's own model's,
 * then the catalog's and the demo model's, wherever they run; a file none of these know keeps its hash.
 */
function modelNames(catalog: ModelCatalog, own: ResolvedModel | undefined): (model: string) => string | undefined {
  return (model) => (own?.sha256 === model ? own.name : catalog.bySha256(model)?.name ?? (model === demoModelSha256() ? DEMO_MODEL.name : undefined));
}

/** Sessions the engine serves at once (node-llama-cpp's slots; 1 for engines that do not say). */
export const slotsOf = (engine: Engine): number => (engine as { slots?: number }).slots ?? 1;

/** The relay's own worker joins the dispatcher like any other (with its own key pair); its sealed events go straight into the run log. */
async function attachEmbedded(dispatcher: RunDispatch, worker: RunHost, profile: WorkerProfile): Promise<string> {
  let id = '';
  id = await dispatcher.attach({
    embedded: true,
    profile,
    publicKey: worker.publicKey,
    prefixes: () => worker.heldPrefixes,
    assign: (runId, attempt, request) =>
      worker.start(runId, request, {
        emit: (event) => dispatcher.event(id, runId, event),
        finish: (status, error) => dispatcher.finished(id, runId, status, error),
      }, attempt),
    stop: (runId) => void worker.stop(runId),
    abandon: (runId) => worker.abandon(runId),
  });
  return id;
}

/** One process: the dispatcher in memory. Replicas (shared backends): the one that coordinates through Postgres. */
async function openDispatcher(store: RelayStore, workerToken: string, log: FastifyInstance['log']): Promise<RunDispatch> {
  const objects = store.objects;
  if (!store.bus || objects instanceof FsBackend) return new Dispatcher(store.runs, store.snapshots, log);
  const [{ SharedDispatcher }, { PgRunLog }, { RequestBox }] = await Promise.all([import('./relay/shared-dispatcher.ts'), import('./relay/pg-run-log.ts'), import('./relay/request-box.ts')]);
  if (!(store.runs instanceof PgRunLog)) throw new FerryError('relay/bad-setup', 'Relay replicas keep their runs in Postgres.');
  return new SharedDispatcher({ db: objects.db, bus: store.bus, runs: store.runs, snapshots: store.snapshots, box: new RequestBox(workerToken), log });
}

function listeningPort(app: FastifyInstance): number {
  const address = app.server.address();
  return address && typeof address === 'object' ? address.port : 0;
}

/**
 * The relay's own address, for its embedded worker to call its API over loopback: plain HTTP even with TLS on (the
 * port takes both, and this machine's own clients are never redirected).
 */
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
  const host = isWildcardHost(config.host) ? 'localhost' : config.host;
  return { app, url: `${config.tls.mode === 'off' ? 'http' : 'https'}://${host}:${listeningPort(app)}`, close: () => app.close() };
}
