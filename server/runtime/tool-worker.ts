/**
 * Node worker_threads entry that hosts one tool component (src/core/runtime/tool-worker.ts): the isolated tool's
 * thread, which the host terminates when a call runs past its time limit.
 */
import { expose } from 'comlink';
import { nodeEndpoint } from './node-endpoint.ts';
import { parentPort } from 'node:worker_threads';
import { toolWorkerApi } from '../../src/core/runtime/tool-worker.ts';
import { enableComponentWasmFeatures } from './node-components.ts';

enableComponentWasmFeatures();
if (!parentPort) throw new Error('server/runtime/tool-worker.ts runs only as a worker thread.');
expose(toolWorkerApi(), nodeEndpoint(parentPort));
