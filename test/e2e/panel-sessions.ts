/**
 * Sessions for the panel suites, written as the PWA writes them — the template's real agent and tool components (the
 * built ones the app serves) with their first state, checkpointed by the agent runtime — followed by the events its
 * agent produces, exported as .ferry files; and importing one, and opening its panel, through the app's controls.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { root, type UiRig } from './ui-harness.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { exportSession } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { AgentRuntime } from '../../src/core/runtime/index.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { componentId, loadBuiltComponent } from '../../server/runtime/node-components.ts';
import { createNodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';

let clock = Date.UTC(2026, 0, 1);
const at = () => (clock += 1000);
export const user = (text: string): SessionEvent => ({ type: 'user', text, at: at() });
export const gen = (text: string, finish: 'stop' | 'tool-call' = 'stop'): SessionEvent => ({ type: 'generation', tokens: [1, 2, 3], text, engine: { id: 'wllama', kind: 'wasm-cpu', model: 'tiny' }, timings: { promptMs: 5, generateMs: 50 }, finish, at: at() });
export const toolCall = (callId: string, args: unknown, tool = 'workspace'): SessionEvent => ({ type: 'tool-call', callId, tool, args: JSON.stringify(args), at: at() });
export const reply = (text: string): SessionEvent => ({ type: 'reply', text, at: at() });
export const toolResult = (callId: string, ok: boolean, output: unknown): SessionEvent => ({ type: 'tool-result', callId, ok, output: typeof output === 'string' ? output : JSON.stringify(output), at: at() });

/** The components the app serves and the relay's worker runs (components/dist: the build both load). */
export const built = (name: string): string => path.join(root, 'components', 'dist', name);

/** The generated model through node-llama-cpp: the runtime records its id and tokenizer in the session. */
let engine: Promise<Engine> | undefined;

export async function disposeEngine(): Promise<void> {
  await (await engine)?.dispose();
}

/**
 * A session as the PWA creates one for a template — the agent and tools' first state, checkpointed by the agent
 * runtime — with `steps` appended. Without `agent`: a session written with no agent at all.
 */
export async function ferryFile(steps: SessionEvent[][], parts?: { agent: string; tools: string[] }, model?: string): Promise<Uint8Array> {
  const store = createMemoryStore();
  let session: Session;
  if (parts) {
    const dirs = new Map<string, string>();
    for (const name of [parts.agent, ...parts.tools]) dirs.set(await componentId(built(name)), built(name));
    const [agent, ...tools] = [...dirs.keys()];
    engine ??= createNodeLlamaEngine({ modelPath: model!, gpu: false, threads: 1, slots: 1 });
    const setup = { engine: await engine, load: (id: string) => loadBuiltComponent(dirs.get(id)!), sampling: { maxTokens: 512, temperature: 0, seed: 0 }, now: at };
    const runtime = await AgentRuntime.create(store, setup, { agent: agent!, tools });
    await runtime.dispose();
    session = await Session.open(store, runtime.session.id);
  } else {
    session = await Session.create(store, { llm: { model: 'tiny', tokenizerId: 'tiny', sampling: { temperature: 0, topP: 1, topK: 0, seed: 0, maxTokens: 512 } }, now: at() });
  }
  for (const events of steps) await session.append({ events, now: at() });
  return exportSession(store, session.id);
}

/** Imports a .ferry file through the UI; the session is catalogued under `template` (what its screen says). */
export async function importThroughUi(rig: UiRig, name: string, bytes: Uint8Array, template: string): Promise<void> {
  const { page } = rig;
  const file = path.join(rig.work, name);
  await writeFile(file, bytes);
  await rig.press(page.getByRole('link', { name: 'Sessions', exact: true }));
  await page.getByTestId('import-input').setInputFiles(file);
  await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
  await rig.transcriptReady();
  await expect.poll(() => page.getByTestId('session-template').textContent()).toBe(template);
}

/** Opens the session's panel by its tab, named `name`. */
export async function openPanelTab(rig: UiRig, name: string): Promise<void> {
  const tab = rig.page.getByTestId('panel-tab');
  await expect.poll(() => tab.textContent()).toBe(name);
  await rig.press(tab);
  await expect.poll(() => rig.page.url(), { timeout: 60_000 }).toMatch(/\/panel$/);
}
