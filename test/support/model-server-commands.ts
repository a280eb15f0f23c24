/**
 * A local HTTP server for the browser's model-download tests, started once in the Vitest process: it serves a
 * generated GGUF model as a catalog entry's URL would (Range requests, CORS for the test page's origin), and can
 * drop the connection or stall part-way, or ignore Range, as the test asks. It records every request's Range header.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrowserCommand } from 'vitest/node';
import type { TinyModelParams } from '../../src/core/llm/gguf/tiny-model.ts';

/** How the server answers the next requests. */
export interface ModelServerMode {
  /** The tiny model to serve (generated in Node). */
  params?: Partial<TinyModelParams>;
  /** Send this many bytes of a response, then hold the connection open without sending more. */
  stallAfter?: number;
  /** Answer every request with the whole file (200), as a server without Range support does. */
  ignoreRange?: boolean;
  /** Serve this text instead of the model (a login or error page where a model was expected). */
  text?: string;
  /** Answer every request with this HTTP status and no file. */
  status?: number;
}

let server: Server | undefined;
let url = '';
let mode: ModelServerMode = {};
let body: Uint8Array = new Uint8Array();
const ranges: (string | null)[] = [];
const stalled = new Set<ServerResponse>();

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  res.setHeader('access-control-allow-origin', '*');
  res.setHeader('cross-origin-resource-policy', 'cross-origin');
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { 'access-control-allow-headers': 'range', 'access-control-allow-methods': 'GET' }).end();
    return;
  }
  ranges.push(req.headers.range ?? null);
  if (mode.status !== undefined) {
    res.writeHead(mode.status).end('no such model');
    return;
  }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const from = m && !mode.ignoreRange ? Number(m[1]) : 0;
  if (from >= body.length && from > 0) {
    res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    return;
  }
  const slice = body.subarray(from);
  res.writeHead(from > 0 ? 206 : 200, {
    'content-type': 'application/octet-stream',
    'content-length': slice.length,
    ...(from > 0 ? { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}),
  });
  const cut = mode.stallAfter;
  if (cut === undefined) {
    res.end(slice);
    return;
  }
  res.write(slice.subarray(0, cut), () => stalled.add(res));
}

/** Starts the server (once) and sets how it answers; resolves with its URL for the model. */
const modelServer: BrowserCommand<[mode: ModelServerMode], string> = async (_ctx, next) => {
  const { generateTinyModel } = await import('../../src/core/llm/gguf/tiny-model.ts');
  mode = next;
  body = next.text !== undefined ? new TextEncoder().encode(next.text) : generateTinyModel(next.params ?? {});
  ranges.length = 0;
  for (const res of stalled) res.destroy();
  stalled.clear();
  if (!server) {
    server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/tiny.gguf`;
    // The Vitest process ends with the run; the server must not keep it alive.
    server.unref();
  }
  return url;
};

/** The Range header of every request since the mode was last set (null: none). */
const modelServerRanges: BrowserCommand<[], (string | null)[]> = async () => [...ranges];

export const modelServerCommands = { modelServer, modelServerRanges };

declare module 'vitest/browser' {
  interface BrowserCommands {
    modelServer: (mode: ModelServerMode) => Promise<string>;
    modelServerRanges: () => Promise<(string | null)[]>;
  }
}
