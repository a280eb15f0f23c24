/**
 * Object bytes in S3-compatible storage (AWS S3, Cloudflare R2, MinIO, any server speaking the S3 API), through
 * the AWS SDK's S3 client. Only bytes live here: which objects exist, and where, is the Postgres index's business
 * (shared-store.ts), so an upload whose commit never happened is invisible, and a reader never lists a bucket
 * (only the operator's verify() does).
 *
 * Layout under the location's prefix: one object alone as `objects/<2 hex>/<id>`, several objects of one commit
 * as one pack `packs/<random>` (one request instead of one per object; the index keeps each one's offset).
 * Credentials come from the SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an IAM role).
 */
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { FerryError } from '../../src/core/errors.ts';
import type { ObjectId, StoredObject } from '../../src/core/store/index.ts';
import type { S3Location } from './locations.ts';
import { messageOf, unavailable } from './postgres.ts';

/** Where one stored object's bytes are: its own key, or a range of a pack. */
export interface Placement {
  id: ObjectId;
  size: number;
  pack: string | null;
  offset: number | null;
}

/** Reads of one pack closer together than this are one ranged request. */
const MAX_SPAN_BYTES = 8 * 1024 * 1024;
/** Requests in flight at once per call. */
const PARALLEL = 8;
/** A request that takes longer has failed: S3 unreachable must not hang a publish. */
const REQUEST_TIMEOUT_MS = 15_000;

export class S3Objects {
  private readonly client: S3Client;
  /** The location without credentials, for messages and /healthz. */
  readonly where: string;

  constructor(private readonly location: S3Location) {
    this.client = new S3Client({
      region: location.region,
      forcePathStyle: location.forcePathStyle,
      ...(location.endpoint ? { endpoint: location.endpoint } : {}),
      // Ask for checksums only where the API requires them: every S3-compatible server understands that.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
      requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: REQUEST_TIMEOUT_MS },
    });
    this.where = `s3://${location.bucket}/${location.prefix}${location.endpoint ? ` at ${location.endpoint}` : ''}`;
  }

  private looseKey(id: ObjectId): string {
    return `${this.location.prefix}objects/${id.slice(0, 2)}/${id}`;
  }

  private packKey(pack: string): string {
    return `${this.location.prefix}packs/${pack}`;
  }

  /**
   * Uploads `objects` (one loose object, or a pack of several) and says where each is. Nothing refers to them
   * until the index commits; `discard` removes an upload whose commit failed.
   */
  async write(objects: readonly StoredObject[]): Promise<{ placements: Placement[]; discard(): Promise<void> }> {
    if (objects.length === 0) return { placements: [], discard: async () => undefined };
    if (objects.length === 1) {
      const o = objects[0]!;
      await this.put(this.looseKey(o.id), o.bytes);
      // A loose object may be another commit's too (the same bytes): it is never removed.
      return { placements: [{ id: o.id, size: o.bytes.length, pack: null, offset: null }], discard: async () => undefined };
    }
    const pack = randomBytes(12).toString('hex');
    const body = new Uint8Array(objects.reduce((n, o) => n + o.bytes.length, 0));
    const placements: Placement[] = [];
    let offset = 0;
    for (const o of objects) {
      body.set(o.bytes, offset);
      placements.push({ id: o.id, size: o.bytes.length, pack, offset });
      offset += o.bytes.length;
    }
    await this.put(this.packKey(pack), body);
    // A pack is this commit's alone (a fresh name): if the commit fails, nothing will ever read it.
    const discard = (): Promise<void> => this.attempt(() => this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.packKey(pack) }))).then(() => undefined, () => undefined);
    return { placements, discard };
  }

  /** The bytes of each placement, in order. A missing or short object is damage (the index says it is there). */
  async read(placements: readonly Placement[]): Promise<Uint8Array[]> {
    const out = new Array<Uint8Array>(placements.length);
    const tasks: (() => Promise<void>)[] = [];
    const byPack = new Map<string, number[]>();
    placements.forEach((p, i) => {
      if (p.pack === null) tasks.push(async () => void (out[i] = await this.get(this.looseKey(p.id), p)));
      else byPack.set(p.pack, [...(byPack.get(p.pack) ?? []), i]);
    });
    for (const [pack, members] of byPack) {
      // Members of one pack that lie close together come in one ranged request; scattered ones one by one.
      members.sort((a, b) => placements[a]!.offset! - placements[b]!.offset!);
      let group: number[] = [];
      const flush = (g: number[]): void => {
        if (g.length === 0) return;
        tasks.push(async () => {
          const first = placements[g[0]!]!;
          const last = placements[g.at(-1)!]!;
          const start = first.offset!;
          const span = await this.get(this.packKey(pack), { id: first.id, size: last.offset! + last.size - start }, start);
          for (const i of g) out[i] = span.slice(placements[i]!.offset! - start, placements[i]!.offset! - start + placements[i]!.size);
        });
      };
      for (const i of members) {
        const p = placements[i]!;
        if (group.length > 0 && p.offset! + p.size - placements[group[0]!]!.offset! > MAX_SPAN_BYTES) {
          flush(group);
          group = [];
        }
        group.push(i);
      }
      flush(group);
    }
    for (let i = 0; i < tasks.length; i += PARALLEL) await Promise.all(tasks.slice(i, i + PARALLEL).map((t) => t()));
    return out;
  }

  /** Throws store/unavailable unless the bucket answers now. */
  async check(): Promise<void> {
    try {
      await this.attempt(() => this.client.send(new HeadBucketCommand({ Bucket: this.location.bucket })));
    } catch (cause) {
      if (cause instanceof S3ServiceException && cause.$metadata.httpStatusCode === 404) {
        throw new FerryError('store/unavailable', `The bucket of ${this.where} does not exist: create it, or fix --objects (FERRY_OBJECTS).`, { cause });
      }
      throw cause;
    }
  }

  /** Every loose object id and pack name under the location's prefix (a listing of the bucket: verify() only). */
  async list(): Promise<{ loose: string[]; packs: string[] }> {
    const out = { loose: [] as string[], packs: [] as string[] };
    const { bucket, prefix } = this.location;
    let token: string | undefined;
    do {
      const page = await this.attempt(() => this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) })));
      for (const { Key: key } of page.Contents ?? []) {
        const rest = key?.slice(prefix.length) ?? '';
        if (rest.startsWith('objects/')) out.loose.push(rest.slice(rest.lastIndexOf('/') + 1));
        else if (rest.startsWith('packs/')) out.packs.push(rest.slice('packs/'.length));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  close(): void {
    this.client.destroy();
  }

  private async put(key: string, bytes: Uint8Array): Promise<void> {
    await this.attempt(() => this.client.send(new PutObjectCommand({ Bucket: this.location.bucket, Key: key, Body: bytes, ContentLength: bytes.length, ContentType: 'application/octet-stream' })));
  }

  /** `want.size` bytes of `key` from `start` (the whole object when start is undefined). */
  private async get(key: string, want: { id: ObjectId; size: number }, start?: number): Promise<Uint8Array> {
    let bytes: Uint8Array;
    try {
      const range = start === undefined ? {} : { Range: `bytes=${start}-${start + want.size - 1}` };
      const res = await this.attempt(() => this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: key, ...range })));
      bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
    } catch (cause) {
      if (cause instanceof FerryError) throw cause;
      throw corrupt(want.id, key, cause);
    }
    if (bytes.length !== want.size) throw corrupt(want.id, key, new Error(`${bytes.length} bytes where the index says ${want.size}`));
    return bytes;
  }

  /** One request; a service that cannot be reached (or answers 5xx) is store/unavailable. */
  private async attempt<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (cause) {
      const status = cause instanceof S3ServiceException ? cause.$metadata.httpStatusCode : undefined;
      if (status === undefined || status >= 500) throw unavailable(`the object storage ${this.where}`, cause);
      if (status === 403 || status === 401) {
        throw new FerryError('store/unavailable', `The object storage ${this.where} refused the relay's credentials (${messageOf(cause)}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.`, { cause });
      }
      throw cause;
    }
  }
}

const corrupt = (id: ObjectId, key: string, cause: unknown): FerryError =>
  new FerryError('store/corrupt-object', `Object ${id} is indexed but its bytes (${key}) cannot be read: ${messageOf(cause)}. The object storage lost or changed them.`, { cause });
