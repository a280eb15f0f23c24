/**
 * The agent runtime in a Node worker thread (the cloud worker's host): the same API as the browser's agent
 * worker (src/core/host/agent-api.ts), with node-llama-cpp as the engine, a filesystem store, and each tool in
 * its own worker thread.
 */
import { expose } from 'comlink';
import { parentPort } from 'node:worker_threads';
import { createAgentApi } from '../../src/core/host/agent-api.ts';
import { createNodeLlamaEngine, type NodeLlamaEngineOptions } from '../llm/node-llama-engine.ts';
import { openFsStore } from '../store/index.ts';
import { enableComponentWasmFeatures } from './node-components.ts';
import { nodeEndpoint } from './node-endpoint.ts';
import { spawnToolThread } from './node-tools.ts';

export type NodeEngineSpec = { kind: 'node-llama-cpp' } & NodeLlamaEngineOptions;

enableComponentWasmFeatures();
const api = createAgentApi<NodeEngineSpec>({
  createEngine: (spec) => createNodeLlamaEngine(spec),
  openStore: (dir) => openFsStore(dir),
  spawnToolWorker: spawnToolThread,
});

export type AgentThreadApi = typeof api;
if (!parentPort) throw new Error('server/runtime/agent-thread.ts runs only as a worker thread.');
expose(api, nodeEndpoint(parentPort));
