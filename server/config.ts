import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../src/core/errors.ts';

/** Everything the relay needs to start. Each field has an embedded default, a flag and an environment variable. */
export interface RelayConfig {
  /** Interface to listen on. Default localhost; use 0.0.0.0 to let phones on your network connect. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** The one folder that holds all of Ferry's data. */
  dataDir: string;
  /** The built PWA (vite build output). */
  staticDir: string;
  /** pino log level. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const defaultConfig: RelayConfig = {
  host: 'localhost',
  port: 8787,
  dataDir: path.join(projectRoot, '.ferry-data'),
  staticDir: path.join(projectRoot, 'dist'),
  logLevel: 'info',
};

export const configHelp = `Options (flag, environment variable, default):
  --host HOST       FERRY_HOST       ${defaultConfig.host}   (0.0.0.0 to accept other devices on your network)
  --port PORT       FERRY_PORT       ${defaultConfig.port}   (0 picks a free port)
  --data DIR        FERRY_DATA       ./.ferry-data
  --static DIR      FERRY_STATIC     ./dist (the built PWA)
  --log-level LVL   FERRY_LOG_LEVEL  ${defaultConfig.logLevel}`;

const levels = new Set<RelayConfig['logLevel']>(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Flags win over the environment, which wins over the defaults. Bad values are refused with the fix. */
export function resolveConfig(args: string[], env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      static: { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const portText = values.port ?? env.FERRY_PORT;
  const port = portText === undefined ? defaultConfig.port : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new FerryError('config/bad-port', `Port "${portText}" is not a TCP port: give an integer from 0 to 65535 (--port or FERRY_PORT).`);
  }
  const logLevel = (values['log-level'] ?? env.FERRY_LOG_LEVEL ?? defaultConfig.logLevel) as RelayConfig['logLevel'];
  if (!levels.has(logLevel)) {
    throw new FerryError('config/bad-log-level', `Log level "${logLevel}" is unknown: use one of ${[...levels].join(', ')}.`);
  }
  return {
    host: values.host ?? env.FERRY_HOST ?? defaultConfig.host,
    port,
    dataDir: path.resolve(values.data ?? env.FERRY_DATA ?? defaultConfig.dataDir),
    staticDir: path.resolve(values.static ?? env.FERRY_STATIC ?? defaultConfig.staticDir),
    logLevel,
  };
}
