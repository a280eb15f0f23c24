/**
 * The relay's GGUF files, for browsers (issue 5): a deployment without internet still gives every device a model.
 * `GET /api/v2/models` lists what the relay hosts; `GET /api/v2/models/<sha256>.gguf` streams one file with
 * HTTP Range support, so the browser's download (src/browser/llm/model-download.ts) resumes where it broke off
 * and caches the file in OPFS. Files are named by content hash and looked up in the relay's own table: no path
 * is ever built from the request.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import { modelPaths, type HostedModel } from '../../src/core/protocol/index.ts';

export interface ModelFile {
  /** SHA-256 of the file (the engines' EngineInfo.model). */
  readonly sha256: string;
  readonly path: string;
  /** How people know it (a catalog name, `demo`, the file's name) and a longer label. */
  readonly name: string;
  readonly label: string;
  readonly tokenizerId: string;
  readonly contextSize: number;
}

export interface ModelFileRoutesOptions {
  readonly models: readonly ModelFile[];
}

/** "bytes=a-b", "bytes=a-" or "bytes=-n" against a file of `size` bytes; null when absent, 'bad' when unsatisfiable. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  if (m[1] === '') {
    const suffix = Number(m[2]);
    return suffix === 0 ? 'bad' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start >= size || end < start ? 'bad' : { start, end };
}

export async function modelFileRoutes(app: FastifyInstance, opts: ModelFileRoutesOptions): Promise<void> {
  const hosted = new Map<string, { file: ModelFile; size: number; listed: HostedModel }>();
  for (const file of opts.models) {
    const size = (await stat(file.path)).size;
    hosted.set(file.sha256, {
      file,
      size,
      listed: { id: file.sha256, name: file.name, label: file.label, bytes: size, tokenizerId: file.tokenizerId, contextSize: file.contextSize, url: modelPaths.file(`${file.sha256}.gguf`) },
    });
  }

  app.get(modelPaths.list, async (_request, reply) => {
    void reply.header('cache-control', 'no-cache');
    return { models: [...hosted.values()].map((h) => h.listed) };
  });

  app.get(modelPaths.file(':file'), async (request, reply) => {
    const name = (request.params as { file?: string }).file ?? '';
    const m = /^([0-9a-f]{64})\.gguf$/.exec(name);
    if (!m) throw new FerryError('protocol/bad-request', `A model file is named <sha256>.gguf (64 lowercase hex digits); list them at ${modelPaths.list}.`);
    const entry = hosted.get(m[1]!);
    if (!entry) throw new FerryError('relay/unknown-model', `This relay hosts no model ${m[1]}; list them at ${modelPaths.list}.`);
    const range = parseRange(request.headers.range, entry.size);
    // Content-addressed: the bytes behind a name never change.
    void reply.header('cache-control', 'public, max-age=31536000, immutable').header('accept-ranges', 'bytes').type('application/octet-stream');
    if (range === 'bad') {
      return reply.code(416).header('content-range', `bytes */${entry.size}`).send();
    }
    const { start, end } = range ?? { start: 0, end: entry.size - 1 };
    if (range) void reply.code(206).header('content-range', `bytes ${start}-${end}/${entry.size}`);
    void reply.header('content-length', String(end - start + 1));
    return reply.send(createReadStream(entry.file.path, { start, end }));
  });
}
