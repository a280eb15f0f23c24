import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../src/core/errors.ts';
import * as v from 'valibot';
import { LIMITS, WorkerTokenSchema, type VerifyTimeout } from '../src/core/protocol/index.ts';
import type { Price } from '../src/core/placement/index.ts';
import { parseAllowed } from './web/address-policy.ts';
import { parseObjectsUrl, redact as redactUrl, type SharedLocation } from './store/locations.ts';
import { CATALOG_NAME } from '../src/core/llm/catalog.ts';

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
  /** Largest payload one uploaded (sealed) object may carry. */
  maxObjectBytes: number;
  /** API requests per minute per client address; 0 turns rate limiting off. */
  rateLimitPerMinute: number;
  /** Other origins whose pages may call the API ("*" for any); the relay's own origin always may. */
  allowOrigins: string[];
  /**
   * Host names the relay answers to besides localhost and IP addresses ("*" for any): its public name behind a
   * proxy, a LAN name. A request for any other name is refused (a DNS-rebinding page cannot read the API).
   */
  allowHosts: string[];
  /**
   * A GGUF model the relay hosts (node-llama-cpp): its OpenAI-compatible /v1 API and its cloud worker use it. A
   * catalog name (`ferry models` lists them) or `demo`, a local path (made absolute), an http(s) URL or
   * hf:<owner>/<repo>/<file.gguf> (downloaded once into the data folder).
   */
  model?: string | undefined;
  /** A JSON file of more catalog entries (a deployment's mirror, its own models); names in it win. */
  catalogFile?: string | undefined;
  /** Folders of built components the cloud worker may run (each a component, or a folder of them). */
  componentDirs: string[];
  /** Run the embedded cloud worker (`ferry start`, with a model); `ferry relay` runs none. */
  embeddedWorker: boolean;
  /**
   * The token `ferry worker` processes attach with. Unset: the relay keeps a random one in <data>/worker-token
   * (created on first start, readable only by its owner).
   */
  workerToken?: string | undefined;
  /** How often attached workers send a heartbeat; one silent for three periods is given up on and its runs move. */
  heartbeatMs: number;
  /** What the embedded cloud worker charges for tokens (USD per 1,000); unset: nothing. */
  workerPrice?: Price | undefined;
  /**
   * Shared backends, for N stateless replicas behind a load balancer: Postgres (postgres://…) for refs, the
   * registries, runs, events and leases, and S3-compatible storage (s3://bucket?endpoint=…&region=…) for sealed
   * objects. Both or neither; unset: SQLite and files in the data folder (one process).
   */
  shared?: SharedLocation | undefined;
  /** HTTPS: off (plain HTTP), certificate files, or a local CA of the relay's own. */
  tls: TlsSettings;
  /**
   * The address other devices use to reach the relay (share and pairing links, their QR codes). Unset: the LAN
   * address when it listens on every interface, else none (the page's own address, with a warning in the app).
   */
  publicUrl?: string | undefined;
  /**
   * Addresses or CIDR ranges the relay may fetch sources from although they are not public (loopback, private,
   * link-local…); default none: only public addresses, and loopback ones while the relay listens on loopback only
   * (server/web/address-policy.ts).
   */
  fetchAllow: string[];
  /** How long a device's verify round may wait for its answer; unset: VERIFY_TIMEOUT (tests shorten it). */
  verifyTimeout?: VerifyTimeout | undefined;
}

export type TlsSettings =
  | { mode: 'off' }
  /** PEM files the operator keeps (re-read hourly, so a renewal by certbot or similar is picked up). */
  | { mode: 'files'; certFile: string; keyFile: string }
  /** A CA made on first start in <data>/tls that phones trust once, and a server certificate it signs. */
  | { mode: 'local' };

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const defaultConfig: RelayConfig = {
  host: 'localhost',
  port: 8787,
  dataDir: path.join(projectRoot, '.ferry-data'),
  staticDir: path.join(projectRoot, 'dist'),
  logLevel: 'info',
  maxObjectBytes: LIMITS.maxObjectBytes,
  rateLimitPerMinute: 1200,
  allowOrigins: [],
  allowHosts: [],
  componentDirs: [path.join(projectRoot, 'components', 'dist')],
  embeddedWorker: true,
  heartbeatMs: 5000,
  tls: { mode: 'off' },
  fetchAllow: [],
};

export const configHelp = `Options (flag, environment variable, default):
  --host HOST             FERRY_HOST              ${defaultConfig.host}   (0.0.0.0 to accept other devices on your network)
  --port PORT             FERRY_PORT              ${defaultConfig.port}   (0 picks a free port)
  --data DIR              FERRY_DATA              ./.ferry-data
  --static DIR            FERRY_STATIC            ./dist (the built PWA)
  --log-level LVL         FERRY_LOG_LEVEL         ${defaultConfig.logLevel}
  --max-object-bytes N    FERRY_MAX_OBJECT_BYTES  ${defaultConfig.maxObjectBytes}   (largest object a client may upload)
  --rate-limit N          FERRY_RATE_LIMIT        ${defaultConfig.rateLimitPerMinute}   (requests a minute per client address; 0 = off)
  --allow-origin LIST     FERRY_ALLOW_ORIGINS     none   (comma-separated origins, or *, whose pages may call the API)
  --allow-host LIST       FERRY_ALLOW_HOSTS       none   (comma-separated host names, or *, the relay answers to besides
                                                  localhost and IP addresses: its public name behind a proxy)
  --model NAME|PATH|URL   FERRY_MODEL             start: demo (the generated model); relay: none   (a GGUF model: served at /v1,
                                                  OpenAI-compatible, and run by the cloud worker; a catalog NAME (see \`ferry models\`),
                                                  a URL or hf:<owner>/<repo>/<file.gguf> is downloaded once into <data>/models)
  --catalog FILE          FERRY_CATALOG           none   (a JSON list of more catalog entries, e.g. the models on a mirror)
  --components DIRS       FERRY_COMPONENTS        ./components/dist   (comma-separated folders of built components the worker may run)
  --worker-token TOKEN    FERRY_WORKER_TOKEN      kept in <data>/worker-token   (what \`ferry worker\` attaches with)
  --price P[,O]           FERRY_WORKER_PRICE      none   (what the embedded cloud worker's tokens cost, USD per 1,000
                                                  prompt[,output]: it is then a paid, third-party worker to placement)
  --database URL          FERRY_DATABASE          none   (postgres://user:password@host:port/db: shared state for relay
                                                  replicas; with --objects. Unset: SQLite in the data folder)
  --objects URL           FERRY_OBJECTS           none   (s3://bucket[/prefix]?endpoint=https://host&region=name: sealed
                                                  objects for relay replicas, AWS S3, R2 or MinIO; credentials from
                                                  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Unset: files)
  --public-url URL        FERRY_PUBLIC_URL        the LAN address with --host 0.0.0.0, else none   (the address other
                                                  devices use: share and pairing links and their QR codes)
  --tls local             FERRY_TLS               off   (HTTPS with a CA of the relay's own, made in <data>/tls; phones
                                                  download it from /ca.crt and trust it once)
  --tls-cert FILE         FERRY_TLS_CERT          none   (HTTPS with this PEM certificate chain; with --tls-key)
  --tls-key FILE          FERRY_TLS_KEY           none   (its PEM private key)
  --fetch-allow LIST      FERRY_FETCH_ALLOW       none   (comma-separated addresses or CIDR ranges, e.g. 192.168.1.0/24,
                                                  the relay may fetch sources from although they are not public; by
                                                  default it refuses private, link-local and other special ones, and
                                                  loopback unless --host is loopback only)`;

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
      'max-object-bytes': { type: 'string' },
      'rate-limit': { type: 'string' },
      'allow-origin': { type: 'string' },
      'allow-host': { type: 'string' },
      model: { type: 'string' },
      catalog: { type: 'string' },
      components: { type: 'string' },
      'worker-token': { type: 'string' },
      price: { type: 'string' },
      database: { type: 'string' },
      objects: { type: 'string' },
      'public-url': { type: 'string' },
      tls: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'fetch-allow': { type: 'string' },
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
  const maxObjectBytes = integerOption(values['max-object-bytes'] ?? env.FERRY_MAX_OBJECT_BYTES, defaultConfig.maxObjectBytes, 1024, 1 << 30, '--max-object-bytes or FERRY_MAX_OBJECT_BYTES');
  const rateLimitPerMinute = integerOption(values['rate-limit'] ?? env.FERRY_RATE_LIMIT, defaultConfig.rateLimitPerMinute, 0, 1_000_000, '--rate-limit or FERRY_RATE_LIMIT');
  const allowOrigins = parseOrigins(values['allow-origin'] ?? env.FERRY_ALLOW_ORIGINS);
  const host = values.host ?? env.FERRY_HOST ?? defaultConfig.host;
  const allowHosts = [...parseHosts(values['allow-host'] ?? env.FERRY_ALLOW_HOSTS), ...(/^[a-z0-9.-]+$/i.test(host) && !/^[\d.]+$/.test(host) ? [host] : [])];
  const model = values.model ?? env.FERRY_MODEL;
  const catalogFile = values.catalog ?? env.FERRY_CATALOG;
  const components = values.components ?? env.FERRY_COMPONENTS;
  const workerToken = checkWorkerToken(values['worker-token'] ?? env.FERRY_WORKER_TOKEN);
  const workerPrice = priceOption(values.price ?? env.FERRY_WORKER_PRICE);
  const shared = sharedOption(values.database ?? env.FERRY_DATABASE, values.objects ?? env.FERRY_OBJECTS, env);
  if (shared && !workerToken) {
    throw new FerryError('config/worker-token-required', 'Relay replicas share one worker token (workers attach to any of them, and runs move between them): give every replica the same --worker-token (or FERRY_WORKER_TOKEN), 43 base64url characters, e.g. from `openssl rand -base64 32 | tr "+/" "-_" | tr -d =`.');
  }
  const tls = tlsOption(values.tls ?? env.FERRY_TLS, values['tls-cert'] ?? env.FERRY_TLS_CERT, values['tls-key'] ?? env.FERRY_TLS_KEY);
  const publicUrl = publicUrlOption(values['public-url'] ?? env.FERRY_PUBLIC_URL);
  const fetchAllow = fetchAllowOption(values['fetch-allow'] ?? env.FERRY_FETCH_ALLOW);
  return {
    host,
    port,
    dataDir: path.resolve(values.data ?? env.FERRY_DATA ?? defaultConfig.dataDir),
    staticDir: path.resolve(values.static ?? env.FERRY_STATIC ?? defaultConfig.staticDir),
    logLevel,
    maxObjectBytes,
    rateLimitPerMinute,
    allowOrigins,
    allowHosts,
    ...(model ? { model: modelSpec(model) } : {}),
    ...(catalogFile ? { catalogFile: path.resolve(catalogFile) } : {}),
    componentDirs: components ? components.split(',').map((d) => path.resolve(d.trim())) : defaultConfig.componentDirs,
    embeddedWorker: defaultConfig.embeddedWorker,
    ...(workerToken ? { workerToken } : {}),
    heartbeatMs: defaultConfig.heartbeatMs,
    ...(workerPrice ? { workerPrice } : {}),
    ...(shared ? { shared } : {}),
    tls,
    ...(publicUrl ? { publicUrl } : {}),
    fetchAllow,
  };
}

/** One way to serve HTTPS at most: the local CA, or certificate files. */
export function tlsOption(tls: string | undefined, cert: string | undefined, key: string | undefined): TlsSettings {
  const mode = tls?.trim().toLowerCase() || undefined;
  if (mode !== undefined && mode !== 'off' && mode !== 'local') {
    throw new FerryError('config/bad-tls', `--tls "${tls}" is unknown: use --tls local for a CA of the relay's own, or --tls-cert/--tls-key for certificate files (FERRY_TLS).`);
  }
  if (cert || key) {
    if (mode === 'local') throw new FerryError('config/bad-tls', 'Choose one way to serve HTTPS: --tls local (a CA of the relay\'s own) or --tls-cert/--tls-key (certificate files), not both.');
    if (!cert || !key) throw new FerryError('config/bad-tls', 'HTTPS from files needs both the certificate and its key: give --tls-cert FILE and --tls-key FILE (FERRY_TLS_CERT, FERRY_TLS_KEY).');
    return { mode: 'files', certFile: path.resolve(cert), keyFile: path.resolve(key) };
  }
  return mode === 'local' ? { mode: 'local' } : { mode: 'off' };
}

/** An origin (scheme://host[:port]) other devices can open; a path or anything else is refused. */
export function publicUrlOption(text: string | undefined): string | undefined {
  const raw = text?.trim().replace(/\/+$/, '');
  if (!raw) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new FerryError('config/bad-public-url', `"${raw}" is not an address other devices can open: write it as https://host[:port] with no path (--public-url or FERRY_PUBLIC_URL).`);
  }
  return url.origin;
}

/** A comma-separated list of addresses and CIDR ranges, each checked (config/bad-fetch-allow names a bad one). */
function fetchAllowOption(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [];
  const entries = text.split(',').map((e) => e.trim());
  for (const entry of entries) parseAllowed(entry);
  return entries;
}

/** Postgres and S3-compatible storage together, checked for form here (reachability when the relay opens them). */
export function sharedOption(database: string | undefined, objects: string | undefined, env: NodeJS.ProcessEnv = process.env): SharedLocation | undefined {
  const db = database?.trim() || undefined;
  const obj = objects?.trim() || undefined;
  if (!db && !obj) return undefined;
  if (!db || !obj) {
    throw new FerryError('config/shared-incomplete', `Replicas share both their database and their objects: give --database postgres://… and --objects s3://… together (FERRY_DATABASE, FERRY_OBJECTS), or neither for one process on SQLite and files.`);
  }
  if (!/^postgres(ql)?:\/\/[^/]+/i.test(db)) {
    throw new FerryError('config/bad-database', `"${redactUrl(db)}" is not a Postgres URL: write postgres://user:password@host:5432/database (--database or FERRY_DATABASE).`);
  }
  parseObjectsUrl(obj, env);
  return { database: db, objects: obj };
}

/**
 * A local model path is made absolute (the relay may change folder); catalog names (a bare name: no slash, no .gguf),
 * URLs and hf: references stay as given and are checked by llm/models.ts when loaded (not imported here: it pulls in
 * node-llama-cpp, which `ferry relay` never needs).
 */
export function modelSpec(spec: string): string {
  return /^(hf:|[a-z][a-z0-9+.-]*:\/\/)/i.test(spec) || (CATALOG_NAME.test(spec) && !spec.endsWith('.gguf')) ? spec : path.resolve(spec);
}

export function checkWorkerToken(token: string | undefined): string | undefined {
  if (token === undefined || token === '') return undefined;
  if (!v.is(WorkerTokenSchema, token)) {
    throw new FerryError('config/bad-worker-token', 'The worker token must be 43 base64url characters (256 random bits): copy it whole from the relay\'s <data>/worker-token (--worker-token or FERRY_WORKER_TOKEN).');
  }
  return token;
}

/** The most a worker may charge per 1,000 tokens, USD (a sanity bound: frontier APIs charge well under $0.1). */
const MAX_PRICE_PER_1K = 1000;

/**
 * A worker's price, "PROMPT[,OUTPUT]" in USD per 1,000 tokens (one number: both); undefined or empty: it charges
 * nothing (the relay owner's own hardware). Placement weighs it, and keeps sessions off it within the user's budget.
 */
export function priceOption(text: string | undefined): Price | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const parts = text.split(',').map((p) => p.trim());
  const numbers = parts.map(Number);
  if (parts.length > 2 || parts.some((p) => p === '') || numbers.some((n) => !Number.isFinite(n) || n < 0 || n > MAX_PRICE_PER_1K)) {
    throw new FerryError('config/bad-price', `"${text}" is not a price: give USD per 1,000 tokens as PROMPT or PROMPT,OUTPUT, each from 0 to ${MAX_PRICE_PER_1K} (e.g. 0.00018 or 0.0001,0.0004).`);
  }
  return { promptPer1k: numbers[0]!, outputPer1k: numbers[1] ?? numbers[0]! };
}

function integerOption(text: string | undefined, fallback: number, min: number, max: number, where: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new FerryError('config/bad-number', `"${text}" is not valid for ${where}: give an integer from ${min} to ${max}.`);
  }
  return n;
}

/** "*" or a comma-separated list of host names (no port, no scheme); anything else is refused. */
function parseHosts(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const h = raw.trim().toLowerCase();
    if (h !== '*' && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(h)) {
      throw new FerryError('config/bad-host', `"${raw.trim()}" is not a host name: give names like ferry.example.com, without scheme or port (--allow-host or FERRY_ALLOW_HOSTS).`);
    }
    return h;
  });
}

/** "*" or a comma-separated list of origins (scheme://host[:port]); anything else is refused, not guessed at. */
function parseOrigins(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const o = raw.trim();
    if (o === '*') return o;
    let url: URL | undefined;
    try {
      url = new URL(o);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== o) {
      throw new FerryError('config/bad-origin', `"${o}" is not an origin: write it as https://host[:port] with no path (--allow-origin or FERRY_ALLOW_ORIGINS).`);
    }
    return o;
  });
}
