/**
 * Tool calls that cannot break, on wllama in Chromium: with a generated random-weight model (which, unconstrained,
 * almost never writes a valid call), every built-in agent's calls over 50 steps are schema-valid. The engine is
 * opened as the app opens it (openBrowserEngine); the agents, tools and step driver are the node-llama-cpp test's
 * (eval/workload-driver.ts), with the app's built components.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from 'vitest/browser';
import { openBrowserEngine } from '../../src/browser/llm/open-engine.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import { loadComponent, type LoadedComponent } from '../../src/core/runtime/index.ts';
import { driveWorkload } from '../../eval/workload-driver.ts';
import { WORKLOADS } from '../../eval/workloads.ts';
import { fromBase64 } from '../support/state-image-json.ts';

let engine: Engine;
const loaded = new Map<string, Promise<LoadedComponent>>();

/** The app's built component, handed over by the test runner and verified against its id as the app does. */
function builtComponent(name: string): Promise<LoadedComponent> {
  let component = loaded.get(name);
  if (!component) {
    component = commands.builtComponentFiles(name).then(({ id, files }) =>
      loadComponent(id, {
        read: async (file) => {
          const bytes = files[file];
          if (bytes === undefined) throw new Error(`component ${name} has no file ${file}`);
          return fromBase64(bytes);
        },
      }),
    );
    loaded.set(name, component);
  }
  return component;
}

beforeAll(async () => {
  // The node-llama-cpp test's model (same parameters, so the same bytes): prompts carry every tool's schema.
  engine = await openBrowserEngine({ kind: 'wllama', model: new Blob([generateTinyModel({ ctx: 8192 }) as Uint8Array<ArrayBuffer>]), contextSize: 8192 });
});
afterAll(async () => {
  await engine?.dispose();
});

describe('constrained tool calls on wllama in Chromium', () => {
  it.each(WORKLOADS.map((w) => [w.name, w] as const))('%s: every call the model writes over 50 steps is schema-valid', async (_name, workload) => {
    const result = await driveWorkload(workload, engine, { steps: 50, toolChoice: 'required', sampling: { maxTokens: 128 } }, builtComponent);
    expect(result.steps).toBe(50);
    expect(result.bad).toEqual([]);
    expect(result.calls).toBeGreaterThan(0);
    expect(result.valid).toBe(result.calls);
  }, 600_000);
});
