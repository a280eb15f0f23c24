/**
 * Snapshots: publish a sealed manifest under a fresh capability id (answering with a write token, once), read a
 * snapshot by id, and move it to a new manifest with the token (compare-and-swap on the manifest the writer saw).
 * The one-request forms (issue 6): publish or update together with the objects that complete the snapshot, in one
 * atomic commit; and read the record, the sealed manifest and the session's structure in one answer.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import {
  ATTEMPT_HEADER,
  CreateSnapshotRequestSchema,
  ContentsQuerySchema,
  FRAMES_CONTENT_TYPE,
  LIMITS,
  PublishQuerySchema,
  SnapshotIdSchema,
  UpdateSnapshotRequestSchema,
  WriteTokenSchema,
  decodeFrames,
  parseAttemptHeader,
  parseWire,
  paths,
  snapshotPaths,
  type CreateSnapshotResponse,
  type SnapshotContents,
  type SnapshotRecord,
} from '../../src/core/protocol/index.ts';
import type { RelayStore } from '../relay/relay-store.ts';
import { unknownSnapshot } from '../relay/snapshot-registry.ts';
import type { RelayMetrics } from './metrics.ts';
import { bodyBytes, maxBatchBody, maxSealedBytes, rawBody, requireLength } from './objects.ts';

export interface SnapshotRoutesOptions {
  store: RelayStore;
  metrics: RelayMetrics;
  /** Publishes per minute per client (creating snapshots is the one write that costs the relay an id forever). */
  publishPerMinute: number;
  /** Whether a worker's run attempt may still publish to the snapshot (the dispatcher's fence). */
  mayPublish?: (run: string, attempt: number, snapshot: string) => boolean | Promise<boolean>;
}

const snapshotId = (params: unknown): string => parseWire(SnapshotIdSchema, (params as { id?: unknown }).id, 'The snapshot id in the path');

function bearer(header: string | undefined): string {
  if (!header) throw new FerryError('relay/token-required', 'Updating a snapshot needs its write token: send Authorization: Bearer <token>.');
  const m = /^Bearer (\S+)$/.exec(header);
  if (!m) throw new FerryError('relay/token-required', 'The Authorization header must be "Bearer <write token>".');
  return parseWire(WriteTokenSchema, m[1], 'The write token');
}

export async function snapshotRoutes(app: FastifyInstance, opts: SnapshotRoutesOptions): Promise<void> {
  const noStore = { 'cache-control': 'no-store' };
  const publishLimit = opts.publishPerMinute > 0 ? { config: { rateLimit: { max: opts.publishPerMinute, timeWindow: 60_000 } } } : {};
  // The object routes are registered first and have set the relay's object limit on the store.
  const maxBatch = maxBatchBody(opts.store.maxObjectBytes);
  app.addContentTypeParser(FRAMES_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: maxBatch }, rawBody);

  /** The framed objects of a publish, its manifest, and which of them are the session's structure (leading) and pages (the rest). */
  function publishBody(request: FastifyRequest): { manifest: string; expect: string | undefined; objects: { id: string; bytes: Uint8Array }[]; structure: string[]; pages: string[] } {
    const query = parseWire(PublishQuerySchema, request.query, 'The query');
    const objects = decodeFrames(bodyBytes(request.body, FRAMES_CONTENT_TYPE), { maxObjectBytes: maxSealedBytes(opts.store.maxObjectBytes), maxFrames: LIMITS.maxObjectsPerBatch });
    if ((query.structure ?? 0) > objects.length) throw new FerryError('protocol/bad-request', `The query says ${query.structure} structure objects lead the batch, which holds ${objects.length}.`);
    const ids = objects.map((o) => o.id);
    return { manifest: query.manifest, expect: query.expect, objects: [...objects], structure: ids.slice(0, query.structure ?? 0), pages: ids.slice(query.structure ?? 0) };
  }

  /** A worker's publish names its run attempt: refused once the relay has moved that run on. */
  async function fence(request: FastifyRequest, id: string): Promise<void> {
    const header = request.headers[ATTEMPT_HEADER];
    if (header === undefined) return;
    const named = typeof header === 'string' ? parseAttemptHeader(header) : undefined;
    if (!named) throw new FerryError('protocol/bad-request', `The ${ATTEMPT_HEADER} header must be "<run id>/<attempt>".`);
    if (!(await opts.mayPublish?.(named.run, named.attempt, id))) {
      throw new FerryError('relay/attempt-superseded', `Run ${named.run} is no longer this worker's (attempt ${named.attempt} was given up and the run moved on, or it ended): its checkpoints are not taken. The worker stops it.`);
    }
  }

  function counted(objects: readonly { bytes: Uint8Array }[], created: number): void {
    opts.metrics.objectBytes.inc({ direction: 'in' }, objects.reduce((n, o) => n + o.bytes.length, 0));
    opts.metrics.objectsStored.inc(created);
  }

  app.post(paths.snapshots, { bodyLimit: LIMITS.maxJsonBody, ...publishLimit }, async (request, reply): Promise<CreateSnapshotResponse> => {
    const { manifest } = parseWire(CreateSnapshotRequestSchema, request.body, 'The request body');
    const created = await opts.store.snapshots.create(manifest);
    opts.metrics.snapshots.inc({ op: 'publish' });
    void reply.code(201).headers(noStore);
    return created;
  });

  app.post(snapshotPaths.publish, { bodyLimit: maxBatch, onRequest: requireLength(maxBatch), ...publishLimit }, async (request, reply): Promise<CreateSnapshotResponse> => {
    const body = publishBody(request);
    if (body.expect !== undefined) throw new FerryError('protocol/bad-request', 'A new snapshot has nothing to compare with: leave out ?expect (updates go to /snapshots/<id>/publish).');
    const { snapshot, writeToken, created } = await opts.store.publish({ manifest: body.manifest, objects: body.objects, structure: body.structure, pages: body.pages });
    counted(body.objects, created);
    opts.metrics.snapshots.inc({ op: 'publish' });
    void reply.code(201).headers(noStore);
    return { snapshot, writeToken: writeToken! };
  });

  app.get(paths.snapshot(':id'), async (request, reply): Promise<SnapshotRecord> => {
    const id = snapshotId(request.params);
    const record = await opts.store.snapshots.get(id);
    if (!record) throw unknownSnapshot(id);
    void reply.headers(noStore);
    return record;
  });

  app.get(snapshotPaths.contents(':id'), async (request, reply): Promise<SnapshotContents> => {
    const id = snapshotId(request.params);
    const { since } = parseWire(ContentsQuerySchema, request.query, 'The query');
    const contents = await opts.store.contents(id, since);
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
    opts.metrics.objectBytes.inc({ direction: 'out' }, contents.objects.reduce((n, o) => n + o.bytes.length, contents.manifest.length));
    void reply.headers(noStore);
    return { snapshot: contents.snapshot, manifest: b64(contents.manifest), objects: contents.objects.map((o) => [o.id, b64(o.bytes)]) };
  });

  app.put(paths.snapshot(':id'), { bodyLimit: LIMITS.maxJsonBody }, async (request, reply): Promise<SnapshotRecord> => {
    const id = snapshotId(request.params);
    const token = bearer(request.headers.authorization);
    await fence(request, id);
    const { manifest, expect } = parseWire(UpdateSnapshotRequestSchema, request.body, 'The request body');
    const record = await opts.store.snapshots.update(id, token, manifest, expect);
    opts.metrics.snapshots.inc({ op: 'update' });
    void reply.headers(noStore);
    return record;
  });

  app.post(snapshotPaths.publishTo(':id'), { bodyLimit: maxBatch, onRequest: requireLength(maxBatch) }, async (request, reply): Promise<SnapshotRecord> => {
    const id = snapshotId(request.params);
    const token = bearer(request.headers.authorization);
    // Nobody without the token gets as far as having the batch looked at.
    await opts.store.snapshots.authorize(id, token);
    await fence(request, id);
    const body = publishBody(request);
    if (body.expect === undefined) throw new FerryError('protocol/bad-request', 'An update must say which manifest it replaces: ?expect=<manifest id> (compare-and-swap).');
    const { snapshot, created } = await opts.store.publish({ update: { id, token, expect: body.expect }, manifest: body.manifest, objects: body.objects, structure: body.structure, pages: body.pages });
    counted(body.objects, created);
    opts.metrics.snapshots.inc({ op: 'update' });
    void reply.headers(noStore);
    return snapshot;
  });
}
