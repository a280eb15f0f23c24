/**
 * Snapshots: publish a sealed manifest under a fresh capability id (answering with a write token, once), read a
 * snapshot by id, and move it to a new manifest with the token (compare-and-swap on the manifest the writer saw).
 */
import type { FastifyInstance } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import {
  CreateSnapshotRequestSchema,
  LIMITS,
  SnapshotIdSchema,
  UpdateSnapshotRequestSchema,
  WriteTokenSchema,
  parseWire,
  paths,
  type CreateSnapshotResponse,
  type SnapshotRecord,
} from '../../src/core/protocol/index.ts';
import type { RelayStore } from '../relay/relay-store.ts';
import { unknownSnapshot } from '../relay/snapshot-registry.ts';
import type { RelayMetrics } from './metrics.ts';

export interface SnapshotRoutesOptions {
  store: RelayStore;
  metrics: RelayMetrics;
  /** Publishes per minute per client (creating snapshots is the one write that costs the relay an id forever). */
  publishPerMinute: number;
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

  app.post(paths.snapshots, {
    bodyLimit: LIMITS.maxJsonBody,
    ...(opts.publishPerMinute > 0 ? { config: { rateLimit: { max: opts.publishPerMinute, timeWindow: 60_000 } } } : {}),
  }, async (request, reply): Promise<CreateSnapshotResponse> => {
    const { manifest } = parseWire(CreateSnapshotRequestSchema, request.body, 'The request body');
    const created = await opts.store.snapshots.create(manifest);
    opts.metrics.snapshots.inc({ op: 'publish' });
    void reply.code(201).headers(noStore);
    return created;
  });

  app.get(paths.snapshot(':id'), async (request, reply): Promise<SnapshotRecord> => {
    const id = snapshotId(request.params);
    const record = await opts.store.snapshots.get(id);
    if (!record) throw unknownSnapshot(id);
    void reply.headers(noStore);
    return record;
  });

  app.put(paths.snapshot(':id'), { bodyLimit: LIMITS.maxJsonBody }, async (request, reply): Promise<SnapshotRecord> => {
    const id = snapshotId(request.params);
    const token = bearer(request.headers.authorization);
    const { manifest, expect } = parseWire(UpdateSnapshotRequestSchema, request.body, 'The request body');
    const record = await opts.store.snapshots.update(id, token, manifest, expect);
    opts.metrics.snapshots.inc({ op: 'update' });
    void reply.headers(noStore);
    return record;
  });
}
