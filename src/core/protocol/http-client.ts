/**
 * A typed client for the relay's HTTP API, with only `fetch` under it, so the browser and the cloud worker (Node)
 * share it. Every response is validated against the wire schemas; every error becomes a FerryError with the
 * relay's code; every call has a timeout, so none hangs when the relay disappears.
 */
import * as v from 'valibot';
import { FerryError, type ErrorCode } from '../errors.ts';
import type { ObjectId } from '../store/index.ts';
import { decodeBitmap, fromBase64Url } from './base64url.ts';
import { FRAMES_CONTENT_TYPE, decodeFrames, encodeFrames, type Framed } from './frames.ts';
import {
  BatchPutResponseSchema,
  CreateSnapshotResponseSchema,
  ErrorBodySchema,
  LIMITS,
  MissingResponseSchema,
  PutObjectResponseSchema,
  SnapshotContentsSchema,
  SnapshotRecordSchema,
  paths,
  snapshotPaths,
  type BatchPutResponse,
  type CreateSnapshotResponse,
  type PutObjectResponse,
  type RunRecord,
  type SnapshotRecord,
  type StartRunRequest,
  RunRecordSchema,
} from './wire.ts';
import { parseWire } from './validate.ts';
import { FINAL_URL_HEADER, URL_FETCH_LIMITS, parseContentType, urlFetchPaths, type FetchedUrl } from './url-fetch.ts';
import { SPACE_HEADER, WorkerListSchema, workerPaths, type WorkerList } from './workers.ts';
import { COMPONENT_LIMITS, ComponentListSchema, componentPaths } from './components.ts';

export interface RelayHttpOptions {
  /** The relay's base URL, e.g. "https://ferry.example" (a path prefix is kept). */
  baseUrl: string;
  fetch?: typeof fetch;
  /** Per request; default 60 s. */
  timeoutMs?: number;
}

/** Bytes that crossed the wire as request and response bodies (headers excluded), and the request count. */
export interface TransferStats {
  requests: number;
  bytesSent: number;
  bytesReceived: number;
}

const utf8 = new TextEncoder();

export class RelayHttp {
  readonly baseUrl: string;
  readonly stats: TransferStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(opts: RelayHttpOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** Which of `ids` the relay lacks, in their order. Pages long lists. */
  async missing(ids: readonly ObjectId[]): Promise<ObjectId[]> {
    const out: ObjectId[] = [];
    for (let i = 0; i < ids.length; i += LIMITS.maxIdsPerQuery) {
      const page = ids.slice(i, i + LIMITS.maxIdsPerQuery);
      const res = await this.json('POST', paths.missing, { ids: page }, MissingResponseSchema);
      const wanted = decodeBitmap(res.missing, page.length, 'relay/bad-response');
      out.push(...page.filter((_, j) => wanted[j]));
    }
    return out;
  }

  putObject(id: ObjectId, sealed: Uint8Array): Promise<PutObjectResponse> {
    return this.request('PUT', paths.object(id), { body: sealed, type: 'application/octet-stream' }, async (res) =>
      parseWire(PutObjectResponseSchema, await this.readJson(res), 'The relay response', 'relay/bad-response'),
    );
  }

  /** Uploads a batch of sealed objects in one request (at most LIMITS.maxBatchBytes framed). */
  putObjects(objects: readonly Framed[]): Promise<BatchPutResponse> {
    return this.framed(paths.batch, objects, BatchPutResponseSchema);
  }

  /** Downloads the objects the relay holds among `ids`, in as few requests as its limits allow. */
  async getObjects(ids: readonly ObjectId[]): Promise<Map<ObjectId, Uint8Array>> {
    const out = new Map<ObjectId, Uint8Array>();
    let rest = [...new Set(ids)];
    while (rest.length > 0) {
      const page = rest.slice(0, LIMITS.maxIdsPerQuery);
      const body = utf8.encode(JSON.stringify({ ids: page }));
      const frames = await this.request('POST', paths.fetch, { body, type: 'application/json' }, async (res) => {
        const bytes = new Uint8Array(await res.arrayBuffer());
        this.stats.bytesReceived += bytes.length;
        return decodeFrames(bytes, { maxObjectBytes: LIMITS.maxBatchBytes, maxFrames: LIMITS.maxIdsPerQuery });
      });
      const asked = new Map(page.map((id, i) => [id, i]));
      let last = -1;
      for (const f of frames) {
        const at = asked.get(f.id);
        if (at === undefined || at <= last) throw new FerryError('relay/bad-response', `The relay sent object ${f.id}, which was not asked for or came out of order.`);
        out.set(f.id, f.bytes);
        last = at;
      }
      // The relay answers in order and stops at its byte cap: everything after the last object sent is still unasked.
      // An empty answer means none of the page is there.
      rest = frames.length === 0 ? rest.slice(page.length) : rest.slice(last + 1);
    }
    return out;
  }

  /** The sealed bytes, or undefined when the relay does not hold the object. */
  async getObject(id: ObjectId): Promise<Uint8Array | undefined> {
    try {
      return await this.request('GET', paths.object(id), undefined, async (res) => {
        const bytes = new Uint8Array(await res.arrayBuffer());
        this.stats.bytesReceived += bytes.length;
        return bytes;
      });
    } catch (err) {
      if (err instanceof FerryError && err.code === 'relay/unknown-object') return undefined;
      throw err;
    }
  }

  createSnapshot(manifest: ObjectId): Promise<CreateSnapshotResponse> {
    return this.json('POST', paths.snapshots, { manifest }, CreateSnapshotResponseSchema);
  }

  getSnapshot(id: string): Promise<SnapshotRecord> {
    return this.json('GET', paths.snapshot(id), undefined, SnapshotRecordSchema);
  }

  /** Moves the snapshot from `expect` to `manifest`; 'store/ref-conflict' when someone else moved it first. */
  updateSnapshot(id: string, writeToken: string, manifest: ObjectId, expect: ObjectId): Promise<SnapshotRecord> {
    return this.json('PUT', paths.snapshot(id), { manifest, expect }, SnapshotRecordSchema, { authorization: `Bearer ${writeToken}` });
  }

  /**
   * Creates a snapshot in one request: the sealed objects that complete it (the first `structure` of them the
   * session's structure, the rest pages), ending with — or already followed by — its sealed manifest.
   */
  publishSnapshot(objects: readonly Framed[], manifest: ObjectId, structure: number): Promise<CreateSnapshotResponse> {
    const query = new URLSearchParams({ manifest, structure: String(structure) });
    return this.framed(`${snapshotPaths.publish}?${query}`, objects, CreateSnapshotResponseSchema);
  }

  /** Moves snapshot `id` from `expect` to `manifest` in one request, with the objects that complete it (see publishSnapshot). */
  publishToSnapshot(id: string, writeToken: string, objects: readonly Framed[], manifest: ObjectId, expect: ObjectId, structure: number): Promise<SnapshotRecord> {
    const query = new URLSearchParams({ manifest, expect, structure: String(structure) });
    return this.framed(`${snapshotPaths.publishTo(id)}?${query}`, objects, SnapshotRecordSchema, { authorization: `Bearer ${writeToken}` });
  }

  /**
   * The snapshot's record and sealed manifest in one request and, with `since` (the version the caller already
   * holds; 0 for none), the sealed structure objects published after it, by remote id.
   */
  async snapshotContents(id: string, since?: number): Promise<{ snapshot: SnapshotRecord; manifest: Uint8Array; objects: Map<ObjectId, Uint8Array> }> {
    const path = snapshotPaths.contents(id) + (since === undefined ? '' : `?since=${since}`);
    const contents = await this.json('GET', path, undefined, SnapshotContentsSchema);
    const bytes = (text: string): Uint8Array => fromBase64Url(text, 'relay/bad-response');
    return { snapshot: contents.snapshot, manifest: bytes(contents.manifest), objects: new Map(contents.objects.map(([oid, b]) => [oid, bytes(b)])) };
  }

  /** The attached workers (cloud workers, and the device nodes of `space` when given), with their public keys. */
  listWorkers(space?: string): Promise<WorkerList> {
    return this.json('GET', workerPaths.list, undefined, WorkerListSchema, space === undefined ? {} : { [SPACE_HEADER]: space });
  }

  /** Resumes snapshot `request.snapshot` on a worker (runs.ts startSealedRun builds the request: keys sealed to workers). */
  startRun(request: StartRunRequest): Promise<RunRecord> {
    return this.json('POST', paths.runs, request, RunRecordSchema);
  }

  getRun(id: string): Promise<RunRecord> {
    return this.json('GET', paths.run(id), undefined, RunRecordSchema);
  }

  /** Hands the session back: the worker checkpoints and publishes the step in flight, then the run ends. */
  stopRun(id: string, writeToken: string): Promise<RunRecord> {
    return this.json('POST', paths.runStop(id), undefined, RunRecordSchema, { authorization: `Bearer ${writeToken}` });
  }

  /** The relay fetches a public web page or file (a source): its bytes, media type and final address (url-fetch.ts). */
  fetchUrl(url: string): Promise<FetchedUrl> {
    return this.request('POST', urlFetchPaths.fetch, { body: utf8.encode(JSON.stringify({ url })), type: 'application/json' }, async (res) => {
      const bytes = new Uint8Array(await res.arrayBuffer());
      this.stats.bytesReceived += bytes.length;
      if (bytes.length > URL_FETCH_LIMITS.maxBytes) throw new FerryError('relay/bad-response', `The relay sent ${bytes.length} bytes for ${url}, more than a fetched source may have.`);
      const { mediaType, charset } = parseContentType(res.headers.get('content-type'));
      return { bytes, mediaType, charset, url: res.headers.get(FINAL_URL_HEADER) ?? url };
    });
  }

  /** The ids of the component builds the relay ships (its workers have them; it serves them to hosts that lack one). */
  async componentBuilds(): Promise<string[]> {
    return (await this.json('GET', componentPaths.list, undefined, ComponentListSchema)).builds;
  }

  /** The image of build `id` from the relay's library (unverified: see host/relay-builds.ts), or undefined when it ships none. */
  async componentBuild(id: string): Promise<Uint8Array | undefined> {
    try {
      return await this.request('GET', componentPaths.build(id), undefined, async (res) => {
        const tooLarge = (n: number): boolean => n > COMPONENT_LIMITS.maxBuildBytes;
        if (tooLarge(Number(res.headers.get('content-length') ?? 0))) throw new FerryError('relay/bad-response', `The relay offers ${res.headers.get('content-length')} bytes for component build ${id.slice(0, 16)}…, more than a build may have (${COMPONENT_LIMITS.maxBuildBytes}).`);
        const bytes = new Uint8Array(await res.arrayBuffer());
        this.stats.bytesReceived += bytes.length;
        if (tooLarge(bytes.length)) throw new FerryError('relay/bad-response', `The relay sent ${bytes.length} bytes for component build ${id.slice(0, 16)}…, more than a build may have (${COMPONENT_LIMITS.maxBuildBytes}).`);
        return bytes;
      });
    } catch (err) {
      if (err instanceof FerryError && err.code === 'relay/unknown-component') return undefined;
      throw err;
    }
  }

  /** The WebSocket URL of a run's event stream, from event `from` on. */
  runEventsUrl(id: string, from = 0): string {
    return `${this.baseUrl.replace(/^http/, 'ws')}${paths.runEvents(id)}?from=${from}`;
  }

  private framed<S extends v.GenericSchema>(path: string, objects: readonly Framed[], schema: S, headers: Record<string, string> = {}): Promise<v.InferOutput<S>> {
    return this.request('POST', path, { body: encodeFrames(objects), type: FRAMES_CONTENT_TYPE }, async (res) => parseWire(schema, await this.readJson(res), 'The relay response', 'relay/bad-response'), headers);
  }

  private json<S extends v.GenericSchema>(method: string, path: string, body: unknown, schema: S, headers: Record<string, string> = {}): Promise<v.InferOutput<S>> {
    const encoded = body === undefined ? undefined : utf8.encode(JSON.stringify(body));
    return this.request(method, path, encoded ? { body: encoded, type: 'application/json' } : undefined, async (res) => parseWire(schema, await this.readJson(res), 'The relay response', 'relay/bad-response'), headers);
  }

  private async readJson(res: Response): Promise<unknown> {
    const text = await res.text();
    this.stats.bytesReceived += utf8.encode(text).length;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new FerryError('relay/bad-response', `The relay at ${this.baseUrl} answered with something that is not JSON (HTTP ${res.status}); is it a Ferry relay?`);
    }
  }

  private async request<T>(method: string, path: string, body: { body: Uint8Array; type: string } | undefined, read: (res: Response) => Promise<T>, headers: Record<string, string> = {}): Promise<T> {
    const url = this.baseUrl + path;
    this.stats.requests++;
    if (body) this.stats.bytesSent += body.body.length;
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        method,
        headers: { accept: 'application/json', ...(body ? { 'content-type': body.type } : {}), ...headers },
        ...(body ? { body: body.body as Uint8Array<ArrayBuffer> } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new FerryError('relay/unreachable', `Cannot reach the relay at ${this.baseUrl} (${cause instanceof Error ? cause.message : String(cause)}); check the address and your connection.`, { cause });
    }
    if (!res.ok) throw await this.errorFrom(res);
    return read(res);
  }

  private async errorFrom(res: Response): Promise<FerryError> {
    let body: unknown;
    try {
      body = await this.readJson(res);
    } catch {
      body = undefined;
    }
    const parsed = v.safeParse(ErrorBodySchema, body);
    if (parsed.success) {
      return new FerryError(parsed.output.error.code as ErrorCode, parsed.output.error.message, { details: { status: res.status } });
    }
    return new FerryError('relay/bad-response', `The relay at ${this.baseUrl} failed with HTTP ${res.status} and no Ferry error body.`, { details: { status: res.status } });
  }
}
