/**
 * The relay's request policy: CORS (which other origins may read API responses — none unless configured; the
 * PWA it serves is same-origin), refusal of API calls from other origins that are not allowed, and per-client
 * rate limits (@fastify/rate-limit, in memory: one relay process).
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
}

export async function registerSecurity(app: FastifyInstance, opts: SecurityOptions): Promise<void> {
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
