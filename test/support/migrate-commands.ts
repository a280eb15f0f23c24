/**
 * Browser commands for the migration tests (they run in the Vitest process): start a relay (`ferry start` in a
 * child process) with the tiny generated model and the built components, open to the test page's origin, and hand
 * the browser the `assistant` agent's build — the same bytes the relay's cloud worker loads.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BrowserCommand } from 'vitest/node';
import type { RelayProcess } from './relay-process.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const componentsDir = path.join(root, 'components', 'dist');

export interface MigrationRelayJson {
  url: string;
  agent: { id: string; files: Record<string, string> };
}

let running: { relay: RelayProcess; dir: string; info: MigrationRelayJson } | undefined;

const startMigrationRelay: BrowserCommand<[origin: string], MigrationRelayJson> = async (_ctx, origin) => {
  if (running) return running.info;
  const [{ generateTinyModel }, { startRelayProcess }, { componentFiles }, { componentId }, { toBase64 }] = await Promise.all([
    import('../../src/core/llm/gguf/tiny-model.ts'),
    import('./relay-process.ts'),
    import('../../server/runtime/node-tools.ts'),
    import('../../server/runtime/node-components.ts'),
    import('./state-image-json.ts'),
  ]);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-migrate-'));
  const model = path.join(dir, 'tiny.gguf');
  // The same parameters as the page's own copy: byte-identical files, so greedy runs agree token for token.
  await writeFile(model, generateTinyModel({ ctx: 4096 }));
  const relay = await startRelayProcess(['--data', path.join(dir, 'data'), '--model', model, '--components', componentsDir, '--allow-origin', origin, '--rate-limit', '0']);
  const agentDir = path.join(componentsDir, 'assistant');
  const files = Object.fromEntries(Object.entries(await componentFiles(agentDir)).map(([k, v]) => [k, toBase64(v)]));
  running = { relay, dir, info: { url: relay.url, agent: { id: await componentId(agentDir), files } } };
  return running.info;
};

const stopMigrationRelay: BrowserCommand<[], string> = async () => {
  if (!running) return '';
  const { relay, dir } = running;
  running = undefined;
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
  return relay.output();
};

export const migrateCommands = { startMigrationRelay, stopMigrationRelay };

declare module 'vitest/browser' {
  interface BrowserCommands {
    startMigrationRelay: (origin: string) => Promise<MigrationRelayJson>;
    stopMigrationRelay: () => Promise<string>;
  }
}
