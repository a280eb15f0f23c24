/**
 * A hostile request set against a relay, from outside, as a stranger would send it: oversized and mistyped bodies
 * on /v1, OpenAI parameters the relay cannot honour, ids longer than the router takes, a run started with a wrong
 * write token when no worker is attached, a DNS-rebinding Host, tokenless stops, forged worker hellos. Every one must
 * be answered with a 4xx JSON error that carries a code — Ferry's `{ error: { code, message } }` on its API, the
 * OpenAI error shape on /v1. Sent by the relay's hostile test (test/unit/relay-hostile.test.ts).
 */
export interface HostileRequest {
  name: string;
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** The exact status and code expected, where the contract fixes them. */
  status: number;
  code: string;
}

import { API_PREFIX } from '../../src/core/protocol/index.ts';

const json = { 'content-type': 'application/json' };
const chat = (extra: Record<string, unknown>): string => JSON.stringify({ model: 'any', messages: [{ role: 'user', content: 'hi' }], ...extra });
const id101 = 'a'.repeat(101);

/** `model` is a model the relay serves (so a refusal is about the parameter, not the model). */
export function hostileRequests(model: string, api = API_PREFIX): HostileRequest[] {
  const chatWith = (extra: Record<string, unknown>) => chat({ model, ...extra });
  return [
    { name: '/v1 body over the limit', method: 'POST', path: '/v1/chat/completions', headers: json, body: chatWith({ pad: 'x'.repeat(2 << 20) }), status: 413, code: 'api/body-too-large' },
    { name: '/v1 XML body', method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/xml' }, body: '<chat/>', status: 415, code: 'api/unsupported-media-type' },
    { name: '/v1 malformed JSON', method: 'POST', path: '/v1/chat/completions', headers: json, body: '{"model":', status: 400, code: 'api/malformed-json' },
    { name: '/v1 logprobs', method: 'POST', path: '/v1/chat/completions', headers: json, body: chatWith({ logprobs: true, top_logprobs: 2 }), status: 400, code: 'api/unsupported-parameter' },
    { name: '/v1 presence_penalty', method: 'POST', path: '/v1/chat/completions', headers: json, body: chatWith({ presence_penalty: 1.5 }), status: 400, code: 'api/unsupported-parameter' },
    { name: '/v1 frequency_penalty', method: 'POST', path: '/v1/completions', headers: json, body: JSON.stringify({ model, prompt: 'hi', frequency_penalty: 1 }), status: 400, code: 'api/unsupported-parameter' },
    { name: '/v1 logit_bias', method: 'POST', path: '/v1/chat/completions', headers: json, body: chatWith({ logit_bias: { '42': 100 } }), status: 400, code: 'api/unsupported-parameter' },
    { name: '/v1 legacy functions', method: 'POST', path: '/v1/chat/completions', headers: json, body: chatWith({ functions: [{ name: 'f' }] }), status: 400, code: 'api/unsupported-parameter' },
    { name: '/v1 tools on plain completions', method: 'POST', path: '/v1/completions', headers: json, body: JSON.stringify({ model, prompt: 'hi', tools: [{ type: 'function', function: { name: 'f' } }] }), status: 400, code: 'api/unsupported-parameter' },
    { name: '/v1 unknown model', method: 'POST', path: '/v1/chat/completions', headers: json, body: chat({ model: 'no-such-model' }), status: 404, code: 'api/unknown-model' },
    { name: 'snapshot id of 101 characters', method: 'GET', path: `${api}/snapshots/${id101}`, status: 400, code: 'protocol/bad-request' },
    { name: 'run id of 101 characters', method: 'GET', path: `${api}/runs/${id101}`, status: 400, code: 'protocol/bad-request' },
    { name: 'object id of 2,000 characters', method: 'GET', path: `${api}/objects/${'b'.repeat(2000)}`, status: 400, code: 'protocol/bad-request' },
    {
      name: 'run with a wrong write token, no worker attached',
      method: 'POST',
      path: `${api}/runs`,
      headers: json,
      body: JSON.stringify({ snapshot: 'c'.repeat(40), writeToken: 'd'.repeat(43), keys: {}, input: { type: 'resume' }, readVerifier: 'e'.repeat(43) }),
      status: 404,
      code: 'relay/unknown-snapshot',
    },
    { name: 'DNS rebinding Host on the API', method: 'GET', path: `${api}/workers`, headers: { host: 'evil.example', origin: 'http://evil.example' }, status: 403, code: 'relay/host-not-allowed' },
    { name: 'DNS rebinding Host on /v1', method: 'GET', path: '/v1/models', headers: { host: 'evil.example:8787' }, status: 403, code: 'relay/host-not-allowed' },
    { name: 'stop without a token', method: 'POST', path: `${api}/runs/${'f'.repeat(32)}/stop`, status: 404, code: 'relay/unknown-run' },
    { name: 'plaintext object upload', method: 'PUT', path: `${api}/objects/${'0'.repeat(64)}`, headers: { 'content-type': 'application/octet-stream' }, body: new TextEncoder().encode('plain text'), status: 400, code: 'relay/not-sealed' },
    { name: 'path traversal', method: 'GET', path: `${api}/objects/..%2F..%2Fworker-token`, status: 400, code: 'protocol/bad-request' },
  ];
}

export interface HostileAnswer {
  request: HostileRequest;
  status: number;
  code: string | undefined;
  /** 4xx, JSON, with a code in the shape of its API. */
  ok: boolean;
}

/** Sends each request to `base` (Node's fetch cannot set Host; this uses node:http) and reads back status and code. */
export async function sendHostile(base: string, requests: readonly HostileRequest[]): Promise<HostileAnswer[]> {
  const http = await import('node:http');
  const url = new URL(base);
  const answers: HostileAnswer[] = [];
  for (const request of requests) {
    const body = request.body === undefined ? undefined : typeof request.body === 'string' ? Buffer.from(request.body) : Buffer.from(request.body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, method: request.method, path: request.path, headers: { ...(body ? { 'content-length': String(body.length) } : {}), ...request.headers } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    let code: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: unknown } };
      code = typeof parsed.error?.code === 'string' ? parsed.error.code : undefined;
    } catch {
      code = undefined;
    }
    answers.push({ request, status, code, ok: status >= 400 && status < 500 && code !== undefined && /^[a-z0-9-]+\/[a-z0-9-]+$/.test(code) });
  }
  return answers;
}
