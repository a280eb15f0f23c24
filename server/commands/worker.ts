/**
 * `ferry worker --relay URL`: loads a model (the generated demo model when none is given) — or, with --upstream,
 * fronts a model an OpenAI-compatible serving cluster serves — measures its profile, and attaches to the relay as
 * a cloud worker (worker/remote.ts) until SIGTERM/SIGINT, when its runs are checkpointed and published and move
 * to other workers.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FerryError } from '../../src/core/errors.ts';
import { checkWorkerToken, defaultConfig, modelSpec, priceOption } from '../config.ts';
import { openComponentLibrary } from '../relay/component-library.ts';
import { RunHost } from '../../src/core/host/run-host.ts';
import { readWorkerToken, workerTokenPath } from '../relay/worker-token.ts';
import { DEMO_MODEL_NOTE } from '../llm/demo-model.ts';
import { loadCatalog, resolveModel } from '../llm/models.ts';
import { DEMO_MODEL } from '../../src/core/llm/catalog.ts';
import { downloadProgress, openModelEngine, openUpstreamEngine } from '../llm/open-model.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { measureProfile } from '../../src/core/host/measure-profile.ts';
import { createWorkerKeys, RelayHttp } from '../../src/core/protocol/index.ts';
import { withRelayBuilds } from '../../src/core/host/relay-builds.ts';
import { engineLinkVerifier, openNodeSocket, RemoteWorker } from '../worker/remote.ts';
import { threadedTools } from '../runtime/node-tools.ts';
import { enableComponentWasmFeatures } from '../runtime/node-components.ts';
import { cpuShare, withCpuShare } from '../../src/core/llm/cpu-share.ts';

export const workerUsage = `ferry worker --relay URL [options]
  Attaches this machine to a relay as a cloud worker: it runs sessions the relay assigns to it, and verifies the
  drafts of devices' speculative sessions for its model that the relay routes to it.
  --relay URL             FERRY_RELAY             the relay, e.g. http://relay.example:8787
  --worker-token TOKEN    FERRY_WORKER_TOKEN      the relay's worker token (its <data>/worker-token); default: read
                                                  from --data, which works when the relay runs here on that folder
  --model NAME|PATH|URL   FERRY_MODEL             demo (the generated model)   (a GGUF model: a catalog name, see
                                                  \`ferry models\`, or a path, URL or hf:<owner>/<repo>/<file.gguf>;
                                                  downloads happen once, into --data; with --upstream: the name the
                                                  upstream serves it under)
  --catalog FILE          FERRY_CATALOG           none   (a JSON list of more catalog entries)
  --upstream URL          FERRY_UPSTREAM          none   (an OpenAI-compatible server to run sessions on instead of a
                                                  local model: vLLM, SGLang, llama.cpp's server or another Ferry
                                                  relay, e.g. https://cluster.example/v1; needs --model)
  --api-key-env VAR       FERRY_UPSTREAM_KEY_ENV  none   (the environment variable holding the upstream's API key;
                                                  the key itself never goes on the command line)
  --data DIR              FERRY_DATA              ./.ferry-data   (models, llama.cpp temp files)
  --components DIRS       FERRY_COMPONENTS        ./components/dist
  --name NAME             FERRY_WORKER_NAME       host-pid   (how the relay lists this worker)
  --slots N               FERRY_WORKER_SLOTS      2   (runs at once)
  --cpu-share F           FERRY_WORKER_CPU_SHARE  1   (the share of a CPU its engine may use, 0.05–1: a shared or
                                                  battery-powered machine stays usable; it measures, and is
                                                  placed, as the slower node it then is)
  --price P[,O]           FERRY_WORKER_PRICE      none   (what its tokens cost, USD per 1,000 prompt[,output]
                                                  tokens: placement weighs it, and users' budgets keep
                                                  sessions off it)`;

export async function workerCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      relay: { type: 'string' },
      'worker-token': { type: 'string' },
      model: { type: 'string' },
      catalog: { type: 'string' },
      data: { type: 'string' },
      components: { type: 'string' },
      name: { type: 'string' },
      slots: { type: 'string' },
      'cpu-share': { type: 'string' },
      price: { type: 'string' },
      upstream: { type: 'string' },
      'api-key-env': { type: 'string' },
    },
  });
  const relayUrl = values.relay ?? env.FERRY_RELAY;
  if (!relayUrl || !/^https?:\/\/[^/]+/i.test(relayUrl)) throw new FerryError('cli/missing-flag', `ferry worker needs the relay's address: --relay http://host:port (or FERRY_RELAY).\n\n${workerUsage}`);
  const dataDir = path.resolve(values.data ?? env.FERRY_DATA ?? defaultConfig.dataDir);
  const token = checkWorkerToken(values['worker-token'] ?? env.FERRY_WORKER_TOKEN) ?? (await readWorkerToken(dataDir));
  if (!token) {
    throw new FerryError('cli/missing-flag', `No worker token: pass the relay's token with --worker-token (or FERRY_WORKER_TOKEN); it is in the relay's ${workerTokenPath('<data>')}.`);
  }
  const slotsText = values.slots ?? env.FERRY_WORKER_SLOTS ?? '2';
  const slots = Number(slotsText);
  if (!Number.isInteger(slots) || slots < 1 || slots > 64) throw new FerryError('cli/bad-flag', `--slots must be an integer from 1 to 64, got "${slotsText}".`);
  const shareText = values['cpu-share'] ?? env.FERRY_WORKER_CPU_SHARE ?? '1';
  const share = Number(shareText);
  if (!(share >= 0.05 && share <= 1)) throw new FerryError('cli/bad-flag', `--cpu-share must be a number from 0.05 to 1, got "${shareText}".`);
  const price = priceOption(values.price ?? env.FERRY_WORKER_PRICE);
  const log = (message: string, details?: Record<string, unknown>): void => console.log(`ferry worker: ${message}${details ? ` ${JSON.stringify(details)}` : ''}`);

  const configured = values.model ?? env.FERRY_MODEL;
  const upstream = values.upstream ?? env.FERRY_UPSTREAM;
  let base: Engine;
  if (upstream) base = await upstreamEngine(upstream, configured, values['api-key-env'] ?? env.FERRY_UPSTREAM_KEY_ENV, env);
  else {
    const spec = modelSpec(configured ?? DEMO_MODEL.name);
    if (spec === DEMO_MODEL.name) log(DEMO_MODEL_NOTE);
    const catalogFile = values.catalog ?? env.FERRY_CATALOG;
    const catalog = catalogFile ? await loadCatalog(catalogFile) : undefined;
    const model = await resolveModel(spec, { dataDir, onProgress: downloadProgress(log), ...(catalog ? { catalog } : {}), ...(env.HF_TOKEN ? { hfToken: env.HF_TOKEN } : {}) });
    base = await openModelEngine(model, dataDir, { slots });
  }
  // A CPU share caps this machine's engine; an upstream's compute is the cluster's.
  const engine = share < 1 && !upstream ? withCpuShare(base, cpuShare(share)) : base;
  const components = values.components ?? env.FERRY_COMPONENTS;
  // Builds this library lacks come from the relay's, verified (compiled with the wasm features they need).
  enableComponentWasmFeatures();
  const library = await openComponentLibrary(components ? components.split(',').map((d) => path.resolve(d.trim())) : defaultConfig.componentDirs);
  const measured = await measureProfile(engine, { name: values.name ?? env.FERRY_WORKER_NAME ?? `${os.hostname()}-${process.pid}`, slots });
  // Devices' drafts for its model are verified here, when the relay serves no such model itself.
  const verifier = engineLinkVerifier(engine);
  const profile = { ...measured, ...(price ? { price } : {}), ...(verifier ? { verifies: true } : {}) };
  const worker: RunHost = new RunHost({ engine, keys: await createWorkerKeys(), startTool: threadedTools(), load: withRelayBuilds((id) => library.load(id), new RelayHttp({ baseUrl: relayUrl })), hasBuild: (id) => library.ids.has(id), relayUrl: () => relayUrl, kv: { prefillTps: profile.prefillTps }, self: () => remote.id, openSocket: openNodeSocket, log, ...(price ? { price } : {}) });
  const remote = new RemoteWorker({ relayUrl, token, worker, profile, log, ...(verifier ? { verifier } : {}) });
  const fail = (err: FerryError): void => {
    console.error(`ferry worker: ${err.message}`);
    void engine.dispose().finally(() => process.exit(1));
  };
  const id = await remote.start(fail).catch((err: FerryError) => {
    void engine.dispose();
    throw err;
  });
  // One plain line scripts and tests wait for.
  console.log(`Ferry worker ${profile.name} attached to ${relayUrl} as ${id} (decode ${profile.decodeTps} tok/s, prefill ${profile.prefillTps} tok/s)`);
  let leaving = false;
  const shutdown = (): void => {
    if (leaving) return;
    leaving = true;
    void remote
      .close()
      .then(() => engine.dispose())
      .then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

/** The upstream engine, with every flag checked first: the URL's form, the model name, the key's variable. */
async function upstreamEngine(upstream: string, model: string | undefined, keyVar: string | undefined, env: NodeJS.ProcessEnv): Promise<Engine> {
  if (!/^https?:\/\/[^/]+/i.test(upstream)) throw new FerryError('cli/bad-flag', `--upstream must be the http(s) URL of an OpenAI-compatible API, e.g. https://cluster.example/v1; got "${upstream}".`);
  if (!model) throw new FerryError('cli/missing-flag', `--upstream needs --model: the name the upstream serves the model under (its GET /v1/models lists them).\n\n${workerUsage}`);
  let apiKey: string | undefined;
  if (keyVar !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyVar)) throw new FerryError('cli/bad-flag', `--api-key-env names an environment variable (e.g. UPSTREAM_API_KEY), not the key itself; got "${keyVar.slice(0, 8)}…".`);
    apiKey = env[keyVar];
    if (!apiKey) throw new FerryError('cli/missing-flag', `--api-key-env ${keyVar}: that environment variable is empty or unset; export the upstream's API key in it.`);
  }
  return openUpstreamEngine({ upstream, model, ...(apiKey ? { apiKey } : {}) });
}
