/** A run on the relay as a test drives it over HTTP: the request body, the POST, and the run's event stream to its end. */
import WebSocket from 'ws';
import * as v from 'valibot';
import { paths, RunMessageSchema, toBase64Url, type PublishResult, type RunMessage } from '../../../src/core/protocol/index.ts';

/** A run request's body for a published snapshot: its key for this run, its write token and the input. */
export function runBody(target: Pick<PublishResult, 'writeToken' | 'key' | 'snapshot'>, input: { type: 'user'; text: string } | { type: 'start'; task: string } | { type: 'resume' }): Record<string, unknown> {
  return { snapshot: target.snapshot.id, key: toBase64Url(target.key), writeToken: target.writeToken, input };
}

/** POSTs `body` (a run request) and answers raw, for its status. */
export const postRun = (relay: string, body: unknown): Promise<Response> =>
  fetch(relay + paths.runs, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Every message of run `runId`'s event stream from `from`, until the relay closes it at the end of the run. */
export function followToEnd(relay: string, runId: string, from = 0): Promise<{ messages: RunMessage[]; code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${relay.replace('http', 'ws')}${paths.runEvents(runId)}?from=${from}`);
    const messages: RunMessage[] = [];
    ws.on('message', (data) => messages.push(v.parse(RunMessageSchema, JSON.parse(String(data)))));
    ws.on('close', (code) => resolve({ messages, code }));
    ws.on('error', reject);
  });
}
