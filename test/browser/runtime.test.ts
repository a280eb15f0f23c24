/**
 * Transparent checkpointing across platforms: the `notes` component's state captured in Node continues in a
 * Chromium Web Worker, and the reverse, with exactly the results of a run that never moved.
 */
import { wrap, type Remote } from 'comlink';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from 'vitest/browser';
import type { ComponentFilesJson } from '../support/runtime-commands.ts';
import type { RuntimeWorkerApi } from './runtime.worker.ts';

const N = 24;
const M = 24;
let worker: Worker;
let api: Remote<RuntimeWorkerApi>;
let notes: ComponentFilesJson;
/** An uninterrupted run of N + M calls, in Node. */
let reference: string[];

beforeAll(async () => {
  worker = new Worker(new URL('./runtime.worker.ts', import.meta.url), { type: 'module' });
  api = wrap<RuntimeWorkerApi>(worker);
  notes = await commands.notesComponentFiles();
  reference = (await commands.notesRunInNode(0, N + M)).results;
}, 180_000); // a cold build of the component (first run after a source change) takes 5–40 s here
afterAll(() => worker.terminate());

describe('component state moves between Node and a Chromium worker', () => {
  it('an uninterrupted run in the worker matches Node', async () => {
    const run = await api.run(notes, 0, N + M);
    expect(run.inWorker).toBe(true);
    expect(run.results).toEqual(reference);
  });

  it('captured in Node, restored in the worker: the same continuation', async () => {
    const inNode = await commands.notesRunInNode(0, N);
    expect(inNode.results).toEqual(reference.slice(0, N));
    const resumed = await api.run(notes, N, N + M, inNode.image);
    expect(resumed.results).toEqual(reference.slice(N));
    // A fresh worker instance without the image answers differently: the image carried the state.
    expect((await api.run(notes, N, N + M)).results).not.toEqual(reference.slice(N));
  });

  it('captured in the worker, restored in Node: the same continuation', async () => {
    const inWorker = await api.run(notes, 0, N);
    expect(inWorker.results).toEqual(reference.slice(0, N));
    const resumed = await commands.notesRunInNode(N, N + M, inWorker.image);
    expect(resumed.results).toEqual(reference.slice(N));
  });
});
