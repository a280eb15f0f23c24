/**
 * How the relay's typed errors become HTTP: a status per error code, and one JSON shape for every error,
 * `{ error: { code, message } }` — including Fastify's own (bad JSON, oversized body) and unexpected failures,
 * whose details go to the log only.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { ERROR_CODES, FerryError, isFerryError, type ErrorCode } from '../../src/core/errors.ts';
import type { ErrorBody } from '../../src/core/protocol/index.ts';


/** What each of Fastify's refusals is called in both areas that answer with them (see the catalogue). */
type ClientWhat = 'malformed-json' | 'body-too-large' | 'unsupported-media-type' | 'bad-content-length';

/** Fastify's own client errors, renamed with a message a person can act on (the area prefix is the API's). */
const fastifyCodes: Record<string, { what: ClientWhat; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { what: 'malformed-json', message: 'The request body is not valid JSON.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { what: 'malformed-json', message: 'The request body is empty; send a JSON object.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { what: 'body-too-large', message: 'The request body is larger than this endpoint accepts.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { what: 'unsupported-media-type', message: 'This endpoint does not accept that Content-Type; send application/json.' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { what: 'bad-content-length', message: 'The body is not as long as its Content-Length header says.' },
  FST_ERR_CTP_INVALID_TYPE: { what: 'unsupported-media-type', message: 'The Content-Type header is malformed.' },
};

/**
 * A client error Fastify raised itself (bad JSON, oversized body, wrong media type, any other 4xx), as a status and
 * `<area>/<what>` code; undefined for anything else (a server failure).
 */
export function clientErrorOf(err: FastifyError | Error, area: 'http' | 'api'): { status: number; code: ErrorCode; message: string } | undefined {
  const fe = err as FastifyError;
  const known = fe.code ? fastifyCodes[fe.code] : undefined;
  const status = fe.statusCode ?? 400;
  if (known) return { status: status >= 400 && status < 500 ? status : 400, code: `${area}/${known.what}`, message: known.message };
  if (err instanceof SyntaxError && status === 400) return { status: 400, code: `${area}/malformed-json`, message: 'The request body is not valid JSON.' };
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return { status: fe.statusCode, code: `${area}/bad-request`, message: err.message };
  return undefined;
}

/** The HTTP status of an error code, as the catalogue (src/core/error-codes.ts) declares it. */
export function statusFor(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | FerryError | Error, request, reply) => {
    if (isFerryError(err)) {
      const status = statusFor(err.code);
      if (status >= 500) request.log.error({ err }, 'request failed');
      return reply.code(status).send(errorBody(err.code, err.message));
    }
    const client = clientErrorOf(err, 'http');
    if (client) return reply.code(client.status).send(errorBody(client.code, client.message));
    request.log.error({ err }, 'unexpected failure');
    return reply.code(500).send(errorBody('http/internal', 'The relay failed unexpectedly; the failure is in its log. Retry, and report it if it persists.'));
  });
}

export const notFound = (what: string): FerryError => new FerryError('http/not-found', `No such resource: ${what}.`);

export const noWorker = (): FerryError =>
  new FerryError('relay/no-worker', 'No cloud worker is attached to this relay: run `ferry start` (it runs one), or attach one with `ferry worker --relay URL`.');
