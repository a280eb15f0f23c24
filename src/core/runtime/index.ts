/**
 * The agent container's component host (DESIGN.md §4): load a built component by content hash, instantiate it
 * with only the granted imports, capture / diff / restore its state as a memory image, and run the action loop.
 */
export { loadComponent, type ComponentSource, type GlueModule, type LoadedComponent, type LoadOptions } from './load.ts';
export { instantiate, type ComponentInstance, type Grants } from './instance.ts';
export { applyDelta, cloneImage, pageBytes, PAGE_SIZE, type GlobalImage, type GlobalValue, type MemoryImage, type StateDelta, type StateImage } from './image.ts';
export { MANIFEST_FILE, parseManifest, type ComponentManifest, type ManifestFile } from './manifest.ts';
export {
  AgentLoop,
  addUsage,
  DEFAULT_MAX_STEPS_PER_RUN,
  DEFAULT_SAMPLING,
  HOST_STEP_LIMITS,
  type ChildSpend,
  type HostCall,
  type LoopChildren,
  type LoopEvent,
  type LoopOptions,
  type LoopState,
  type HeldContext,
  type RunInput,
  type Sampling,
  type StepRecord,
  type ToolHost,
  type ToolOutcome,
} from './loop.ts';
export { DEFAULT_TOOL_LIMITS, inProcessTool, invokeTool, type ToolLimits } from './tools.ts';
export { checkJsonSchema, type JsonSchema } from './json-schema.ts';
export {
  agentOf,
  checkActions,
  resultError,
  toolExportsOf,
  type Agent,
  type AgentAction,
  type AgentEvent,
  type AgentInfo,
  type ChildResult,
  type Generation,
  type GenerateParams,
  type SubTask,
  type ToolInfo,
  type WitMessage,
  type WitToolCall,
  type WitToolResult,
} from './wit.ts';
export { captureKv, decodeKvEntry, encodeKvEntry, kvComponentName, kvPays, restoreKv, KV_PREFIX, type KvEvent, type KvPolicy } from './kv-handoff.ts';
export { AgentRuntime, localTool, type CreateOptions, type RuntimeEvent, type RuntimeSetup, type ToolSlot } from './runtime.ts';
export { Checkpointer, instanceState, keyframes, readChain, readHostState, readImageAt, KEYFRAME_RATIO, MAX_CHAIN, type HostState, type StatefulComponent } from './checkpoint.ts';
export { nextStepPrefix, type StepPrefix } from './held-prefix.ts';
export { decodeChain, encodeDelta, encodeKeyframe, encodeSnapshot, fingerprint, snapshotOf } from './state-codec.ts';
export { isolatedTool, toolWorkerApi, type ComponentFiles, type ToolWorkerApi, type WorkerHandle } from './tool-worker.ts';
export { ChildProgressSchema, HERE, type ChildProgress, type JobNode } from './child-progress.ts';
