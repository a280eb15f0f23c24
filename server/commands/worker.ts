/**
 * `ferry worker --relay URL`: loads a model (the generated demo model when none is given), measures its profile,
 * and attaches to the relay as a cloud worker (worker/remote.ts) until SIGTERM/SIGINT, when its runs are
 * checkpointed and published and move to other workers.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FerryError } from '../../src/core/errors.ts';
import { checkWorkerToken, defaultConfig, modelSpec, priceOption } from '../config.ts';
import { openComponentLibrary } from '../relay/component-library.ts';
import { RunHost } from '../../src/core/node/run-host.ts';
import { readWorkerToken, workerTokenPath } from '../relay/worker-token.ts';
import { DEMO_MODEL_NOTE, ensureDemoModel } from '../llm/demo-model.ts';
import { resolveModel } from '../llm/models.ts';
import { downloadProgress, openModelEngine } from '../llm/open-model.ts';
import { measureProfile } from '../../src/core/node/profile.ts';
import { openNodeSocket, RemoteWorker } from '../worker/remote.ts';
import { threadedTools } from '../runtime/node-tools.ts';
import { cpuShare, withCpuShare } from '../../src/core/llm/cpu-share.ts';

export const workerUsage = `ferry worker --relay URL [options]
  Attaches this machine to a relay as a cloud worker: it runs sessions the relay assigns to it.
  --relay URL             FERRY_RELAY             the relay, e.g. http://relay.example:8787
  --worker-token TOKEN    FERRY_WORKER_TOKEN      the relay's worker token (its <data>/worker-token); default: read
                                                  from --data, which works when the relay runs here on that folder
  --model PATH|URL|hf:    FERRY_MODEL             the generated demo model   (a GGUF model; URLs are downloaded once)
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
      data: { type: 'string' },
      components: { type: 'string' },
      name: { type: 'string' },
      slots: { type: 'string' },
      'cpu-share': { type: 'string' },
      price: { type: 'string' },
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
  let spec: string;
  if (configured) spec = modelSpec(configured);
  else {
    spec = (await ensureDemoModel(dataDir)).path;
    log(DEMO_MODEL_NOTE);
  }
  const model = await resolveModel(spec, { dataDir, onProgress: downloadProgress(log), ...(env.HF_TOKEN ? { hfToken: env.HF_TOKEN } : {}) });
  const native = await openModelEngine(model, dataDir, { slots });
  const engine = share < 1 ? withCpuShare(native, cpuShare(share)) : native;
  const components = values.components ?? env.FERRY_COMPONENTS;
  const library = await openComponentLibrary(components ? components.split(',').map((d) => path.resolve(d.trim())) : defaultConfig.componentDirs);
  const measured = await measureProfile(engine, { name: values.name ?? env.FERRY_WORKER_NAME ?? `${os.hostname()}-${process.pid}`, slots });
  const profile = price ? { ...measured, price } : measured;
  const worker: RunHost = new RunHost({ engine, startTool: threadedTools(), load: (id) => library.load(id), hasBuild: (id) => library.ids.has(id), relayUrl: () => relayUrl, kv: { prefillTps: profile.prefillTps }, self: () => remote.id, openSocket: openNodeSocket, ...(price ? { price } : {}) });
  const remote = new RemoteWorker({ relayUrl, token, worker, profile, log });
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
