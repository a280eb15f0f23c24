/**
 * The relay's request policy: the names it answers to (a Host allow-list, so a DNS-rebinding page on another name
 * cannot read it), CORS (which other origins may read API responses — none unless configured; the PWA it serves is
 * same-origin), refusal of API calls from other origins that are not allowed, and per-client rate limits
 * (@fastify/rate-limit, in memory: one relay process).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import { FerryError } from '../../src/core/errors.ts';
import { ATTEMPT_HEADER, SPACE_HEADER } from '../../src/core/protocol/index.ts';

export interface SecurityOptions {
  /** Origins allowed to call the API from a browser, besides the relay's own; "*" allows any. */
  allowOrigins: readonly string[];
  /** Requests per minute per client address; 0 turns rate limiting off. */
  rateLimitPerMinute: number;
  /**
   * Host names the relay answers to besides localhost and IP addresses (its public name behind a proxy, a LAN
   * name); "*" answers any. The names of allowed origins are included.
   */
  allowHosts: readonly string[];
}

/** The host name of a Host header (port and IPv6 brackets stripped), lower-cased; undefined when malformed. */
function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::\d{1,5})?$/i.exec(header.trim());
  return m ? m[1]!.toLowerCase().replace(/^\[|\]$/g, '') : undefined;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Whether the relay answers a request for `host`: localhost names and IP literals always (a rebinding attack needs a
 * name it controls), and the configured names. A page reached by an IP address or localhost is the relay's own.
 */
export function hostAllowed(header: string | undefined, opts: Pick<SecurityOptions, 'allowHosts' | 'allowOrigins'>): boolean {
  const name = hostName(header);
  if (!name) return false;
  if (opts.allowHosts.includes('*')) return true;
  if (name === 'localhost' || name.endsWith('.localhost') || IPV4.test(name) || name.includes(':')) return true;
  if (opts.allowHosts.some((h) => h.toLowerCase() === name)) return true;
  return opts.allowOrigins.some((o) => o !== '*' && hostName(new URL(o).host) === name);
}

export async function registerSecurity(app: FastifyInstance, opts: SecurityOptions): Promise<void> {
  app.addHook('onRequest', async (request) => {
    if (!hostAllowed(request.headers.host, opts)) {
      throw new FerryError('relay/host-not-allowed', `This relay does not answer to the name ${JSON.stringify(String(request.headers.host ?? '').slice(0, 100))}; its operator can add it with --allow-host.`);
    }
  });
  const any = opts.allowOrigins.includes('*');
  await app.register(cors, {
    origin: any ? '*' : [...opts.allowOrigins],
    methods: ['GET', 'HEAD', 'POST', 'PUT'],
    // Ferry's own headers too: a page on an allowed origin lists its space's nodes, a browser node publishes its runs.
    allowedHeaders: ['content-type', 'authorization', SPACE_HEADER, ATTEMPT_HEADER],
    maxAge: 600,
  });
  if (opts.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: opts.rateLimitPerMinute,
      timeWindow: 60_000,
      errorResponseBuilder: (_request, context) =>
        new FerryError('http/rate-limited', `Too many requests from your address: at most ${context.max} a minute. Retry in ${context.after}.`),
    });
  }
}

/** True for a browser request from a page on another origin that the policy does not allow. */
export function isForeignOrigin(request: FastifyRequest, opts: SecurityOptions): boolean {
  const origin = request.headers.origin;
  if (!origin || opts.allowOrigins.includes('*') || opts.allowOrigins.includes(origin)) return false;
  try {
    return new URL(origin).host !== request.headers.host;
  } catch {
    return true;
  }
}

export function refuseForeignOrigins(app: FastifyInstance, opts: SecurityOptions): void {
  app.addHook('preHandler', async (request) => {
    if (isForeignOrigin(request, opts)) {
      throw new FerryError('relay/origin-not-allowed', `Pages on ${request.headers.origin} may not call this relay's API; its operator can allow that origin with --allow-origin.`);
    }
  });
}
