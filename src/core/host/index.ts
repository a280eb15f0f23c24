/**
 * Hosting sessions (DESIGN §9): how a session runs wherever it runs — one SessionRunner contract and event
 * vocabulary, implemented in this thread (RuntimeRunner), by an agent worker (AgentRunner) and by runs on a relay's
 * node followed from here (RelayRunner) — and being a node: RunHost runs what a relay assigns, NodeLink speaks the
 * worker protocol. Above runtime and parallel; nothing below imports it.
 */
export { move, withContext, type RunnerEvent, type RunnerListener, type SessionRunner } from './session-runner.ts';
export { RuntimeRunner } from './runtime-runner.ts';
export { AgentRunner, type AgentRunnerOptions, type AgentWorker } from './agent-runner.ts';
export { RelayRunner, restoreRelayPlacement, serializeRelayPlacement, type RelayPlacement, type RelayRunnerOptions } from './relay-runner.ts';
export { readRunEvent, type RunControl } from './run-events.ts';
export { createAgentApi, unwrap, type AgentApi, type AgentPlatform, type AgentStatus, type EngineNotices, type ParallelOptions, type StartOptions } from './agent-api.ts';
export { AgentProxy, type AgentRemote } from './agent-proxy.ts';
export { RunHost, type RunEvent, type RunHostOptions, type RunSink } from './run-host.ts';
export { NodeLink, type LinkSocket, type LinkState } from './node-link.ts';
export { defaultVerifySocket, speculativeRun, type OpenVerifySocket, type SpeculativeRun, type SpeculativeRunOptions } from './speculative-run.ts';
export { measureProfile } from './measure-profile.ts';
export { loadRelayBuild, withRelayBuilds, type LoadBuild } from './relay-builds.ts';
