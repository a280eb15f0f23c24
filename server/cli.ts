/**
 * The `ferry` command.
 *   ferry start       the relay (PWA, API, /healthz, /metrics on one port, data in one folder) and one embedded
 *                     cloud worker (on the generated demo model unless --model says otherwise)
 *   ferry relay       the relay alone
 *   ferry worker      a cloud worker attached to a relay elsewhere
 *   ferry models      the model catalog, and which of its models are downloaded
 *   ferry gen-model   write a tiny llama GGUF with seeded random weights (tests, benchmarks, offline demos)
 */
import { configHelp, resolveConfig } from './config.ts';
import { startRelay } from './app.ts';
import { isFerryError } from '../src/core/errors.ts';
import { DEMO_MODEL } from '../src/core/llm/catalog.ts';
import { workerTokenPath } from './relay/worker-token.ts';

const usage = `Usage: ferry <command> [options]

Commands:
  start        run Ferry: the relay (the PWA, its API, /healthz and /metrics on one port) and one embedded
               cloud worker that resumes published sessions (the runs API); without --model it runs the
               generated demo model (random weights)
  relay        run the relay alone (no worker of its own; --model still serves /v1; \`ferry worker\`s attach)
  worker       attach a cloud worker to a relay (see: ferry worker --help)
  models       list the model catalog (\`--model NAME\` downloads one) and what is downloaded (see: ferry models --help)
  gen-model    write a tiny generated GGUF model (see: ferry gen-model --help)
  help         show this help

${configHelp}`;

async function runRelay(args: string[], embeddedWorker: boolean): Promise<void> {
  const config = { ...resolveConfig(args), embeddedWorker };
  if (embeddedWorker && !config.model) config.model = DEMO_MODEL.name;
  const demo = config.model === DEMO_MODEL.name;
  const relay = await startRelay(config);
  if (demo) {
    const { DEMO_MODEL_NOTE } = await import('./llm/demo-model.ts');
    relay.app.log.warn({ model: config.model }, DEMO_MODEL_NOTE);
    console.log(`ferry: ${DEMO_MODEL_NOTE}`);
  }
  // One plain line that scripts and tests can wait for; the structured log has the details.
  console.log(`Ferry is running at ${relay.url} (data in ${config.dataDir})`);
  console.log(`Attach more workers with: ferry worker --relay ${relay.url} --worker-token "$(cat ${workerTokenPath(config.dataDir)})"${config.workerToken ? ' (or the token it was started with)' : ''}`);
  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    relay.app.log.info({ signal }, 'shutting down');
    relay.close().then(
      () => process.exit(0),
      (err: unknown) => {
        relay.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case 'start':
      return runRelay(args, true);
    case 'relay':
      return runRelay(args, false);
    case 'worker': {
      const { workerCommand, workerUsage } = await import('./commands/worker.ts');
      if (args.includes('--help') || args.includes('-h')) return void console.log(workerUsage);
      return workerCommand(args);
    }
    case 'models': {
      const { modelsCommand, modelsUsage } = await import('./commands/models.ts');
      if (args.includes('--help') || args.includes('-h')) return void console.log(modelsUsage);
      return modelsCommand(args);
    }
    case 'gen-model': {
      const { genModelCommand } = await import('./commands/gen-model.ts');
      return genModelCommand(args);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(usage);
      return;
    default:
      console.error(`Unknown command "${command}".\n\n${usage}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // Expected failures (bad flags, unusable data folder, unbuilt PWA) print their actionable message only.
  if (isFerryError(err) || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
    console.error(`ferry: ${(err as Error).message}`);
  } else {
    console.error(err);
  }
  process.exit(1);
});
