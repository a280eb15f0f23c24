/**
 * A Web Worker that hosts the `notes` component with the isomorphic runtime (as workers/agent.worker.ts will):
 * loads it from files the test hands over, optionally restores an image, runs notes calls and captures the state.
 */
import { expose } from 'comlink';
import { instantiate, loadComponent, type ComponentSource } from '../../src/core/runtime/index.ts';
import { invokeOf, notesCalls, runCalls } from '../support/notes-workload.ts';
import type { ComponentFilesJson } from '../support/runtime-commands.ts';
import { fromBase64, imageFromJson, imageToJson, type StateImageJson } from '../support/state-image-json.ts';

export interface WorkerRun {
  results: string[];
  image: StateImageJson;
  inWorker: boolean;
}

const api = {
  async run(component: ComponentFilesJson, from: number, to: number, image?: StateImageJson): Promise<WorkerRun> {
    const source: ComponentSource = {
      read: async (file) => {
        const bytes = component.files[file];
        if (bytes === undefined) throw new Error(`no file ${file}`);
        return fromBase64(bytes);
      },
    };
    const instance = await instantiate(await loadComponent(component.id, source), {});
    if (image) instance.restore(imageFromJson(image));
    const results = runCalls(invokeOf(instance.exports), notesCalls(from, to));
    return { results, image: imageToJson(instance.capture()), inWorker: globalThis.constructor.name === 'DedicatedWorkerGlobalScope' };
  },
};

export type RuntimeWorkerApi = typeof api;
expose(api);
