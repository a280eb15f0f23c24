/**
 * Objects: which of these ids are missing, upload one (sealed, size-limited, Content-Length required and checked),
 * download one. Ids are validated before anything else; bytes are checked to be a sealed Ferry object.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import {
  FRAMES_CONTENT_TYPE,
  FetchRequestSchema,
  LIMITS,
  MissingRequestSchema,
  ObjectIdSchema,
  decodeFrames,
  encodeBitmap,
  encodeFrames,
  paths,
  parseWire,
  type BatchPutResponse,
  type MissingResponse,
  type PutObjectResponse,
} from '../../src/core/protocol/index.ts';
import type { RelayStore } from '../relay/relay-store.ts';
import type { RelayMetrics } from './metrics.ts';

export interface ObjectRoutesOptions {
  store: RelayStore;
  metrics: RelayMetrics;
  /** Largest payload a sealed object may claim. */
  maxObjectBytes: number;
}

/** Room for the container prefix, header and GCM tag around the largest payload. */
const SEAL_OVERHEAD = 4096;

/** The largest sealed object, and framed body (a batch, or a publish, which is a batch), when payloads are at most `maxObjectBytes`. */
export const maxSealedBytes = (maxObjectBytes: number): number => maxObjectBytes + SEAL_OVERHEAD;
export const maxBatchBody = (maxObjectBytes: number): number => Math.max(LIMITS.maxBatchBytes, maxSealedBytes(maxObjectBytes) + 64);

/** Leaves the body as bytes, for the framed and octet-stream content types. */
export const rawBody = (_request: unknown, body: Buffer, done: (err: null, body: Buffer) => void): void => done(null, body);

const objectId = (params: unknown): string => parseWire(ObjectIdSchema, (params as { id?: unknown }).id, 'The object id in the path');

/** An upload must say how long it is, and that must be within the limit: checked before the body is read. */
export function requireLength(limit: number) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers['content-length'];
    if (header === undefined) throw new FerryError('relay/length-required', 'Uploads must carry a Content-Length header.');
    const length = Number(header);
    if (!Number.isSafeInteger(length) || length < 0) throw new FerryError('http/bad-content-length', `Content-Length "${header}" is not a byte count.`);
    if (length > limit) throw new FerryError('relay/too-large', `The upload is ${length} bytes; this relay accepts at most ${limit} here.`);
  };
}

export function bodyBytes(body: unknown, type: string): Uint8Array {
  if (!(body instanceof Uint8Array)) throw new FerryError('http/unsupported-media-type', `Send this upload as Content-Type: ${type}.`);
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
}

export async function objectRoutes(app: FastifyInstance, opts: ObjectRoutesOptions): Promise<void> {
  const maxUpload = maxSealedBytes(opts.maxObjectBytes);
  const maxBatch = maxBatchBody(opts.maxObjectBytes);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: maxUpload }, rawBody);
  app.addContentTypeParser(FRAMES_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: maxBatch }, rawBody);
  // Publishing stores objects too (snapshots.ts): one limit for every path.
  opts.store.maxObjectBytes = opts.maxObjectBytes;

  app.post(paths.batch, { bodyLimit: maxBatch, onRequest: requireLength(maxBatch) }, async (request): Promise<BatchPutResponse> => {
    const frames = decodeFrames(bodyBytes(request.body, FRAMES_CONTENT_TYPE), { maxObjectBytes: maxUpload, maxFrames: LIMITS.maxObjectsPerBatch });
    const created = await opts.store.putObjects(frames, opts.maxObjectBytes);
    const bytes = frames.reduce((n, f) => n + f.bytes.length, 0);
    opts.metrics.objectBytes.inc({ direction: 'in' }, bytes);
    opts.metrics.objectsStored.inc(created);
    return { received: frames.length, created, bytes };
  });

  app.post(paths.fetch, { bodyLimit: LIMITS.maxJsonBody }, async (request, reply) => {
    const { ids } = parseWire(FetchRequestSchema, request.body, 'The request body');
    const found = await opts.store.getObjects(ids, LIMITS.maxBatchBytes);
    const body = encodeFrames(found);
    opts.metrics.objectBytes.inc({ direction: 'out' }, body.length);
    void reply.header('content-type', FRAMES_CONTENT_TYPE).header('cache-control', 'no-store');
    return reply.send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  });

  app.post(paths.missing, { bodyLimit: LIMITS.maxJsonBody }, async (request): Promise<MissingResponse> => {
    const { ids } = parseWire(MissingRequestSchema, request.body, 'The request body');
    const missing = new Set(await opts.store.missing(ids));
    return { missing: encodeBitmap(ids.map((id) => missing.has(id))) };
  });

  app.put(paths.object(':id'), { bodyLimit: maxUpload, onRequest: requireLength(maxUpload) }, async (request, reply): Promise<PutObjectResponse> => {
    const id = objectId(request.params);
    const bytes = bodyBytes(request.body, 'application/octet-stream');
    const { created, size } = await opts.store.putObject(id, bytes, opts.maxObjectBytes);
    opts.metrics.objectBytes.inc({ direction: 'in' }, size);
    if (created) opts.metrics.objectsStored.inc();
    void reply.code(created ? 201 : 200);
    return { id, created, size };
  });

  app.get(paths.object(':id'), async (request, reply) => {
    const bytes = await opts.store.getObject(objectId(request.params));
    opts.metrics.objectBytes.inc({ direction: 'out' }, bytes.length);
    // Immutable by construction: an id names the same bytes forever.
    void reply.header('content-type', 'application/octet-stream').header('cache-control', 'private, max-age=31536000, immutable');
    return reply.send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });
}
