/**
 * Child process for "restore in another process": opens a session from a filesystem store, restores the agent
 * and its tools from the head checkpoint into fresh instances, plays the given turns and prints the replies.
 * stdin: { storeDir, sessionId, modelPath, turns, from }.
 */
import { text } from 'node:stream/consumers';
import { openFsStore } from '../../server/store/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { fixtures, setupFor, tinyEngine, turns } from './runtime-agent.ts';

const input = JSON.parse(await text(process.stdin)) as { storeDir: string; sessionId: string; modelPath: string; turns: string[]; from: number };
const store = await openFsStore(input.storeDir);
const engine = await tinyEngine(input.modelPath);
const runtime = await AgentRuntime.open(store, setupFor(await fixtures(), engine), input.sessionId);
const replies = await turns(runtime, input.turns, input.from);
await runtime.dispose();
await engine.dispose();
process.stdout.write(JSON.stringify({ pid: process.pid, replies, steps: runtime.loopState.steps }));
