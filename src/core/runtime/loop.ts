/**
 * The action loop (DESIGN.md §4): event → agent.step → actions → execute → events. The agent is a component that
 * only decides; the host executes: it generates through the one Engine interface (prompt rendered with the model's
 * chat template, tool instructions from llm/tool-calls.ts), invokes tools after checking their arguments against
 * the tool's JSON schema, relays replies, runs forked children, and streams everything to its caller. After every
 * step it calls `afterStep` — where the runtime checkpoints (checkpoint.ts) — so a step is the unit of recovery.
 *
 * Running an agent with tools and an Engine:
 *
 * ```ts
 * import { AgentLoop, agentOf, inProcessTool, instantiate, loadComponent } from '../core/runtime/index.ts';
 *
 * const agent = agentOf(await instantiate(await loadComponent(agentId, source), {}));
 * const notes = await inProcessTool(await instantiate(await loadComponent(notesId, source), {}));
 * const loop = new AgentLoop({ agent, tools: [notes], engine });   // engine: any Engine (tests of agent logic may script one)
 * for await (const event of loop.run({ type: 'start', task: 'Outline a talk on ferries' })) {
 *   if (event.type === 'token') write(event.text);
 *   if (event.type === 'tool-result') log(event.tool, event.ok, event.output);
 *   if (event.type === 'reply') show(event.text);
 * }
 * // The run ends when the agent is done, or idle (it returned no actions: waiting for the user):
 * if (loop.state.status === 'idle') for await (const e of loop.run({ type: 'user', text: 'More detail, please' })) …
 * ```
 *
 * What the agent sees: `start(task)` / `user-message(text)` from the caller; `generation-result` after each
 * `generate` action (the raw model text — tool calls in it are `<tool_call>{"name", "arguments"}</tool_call>`,
 * parse them with llm/tool-calls.ts `parseToolCalls` and answer malformed ones with `describeToolCallErrors`);
 * `tool-result` after each `call-tool` (ok=false with a message for the model when the tool is unknown, the
 * arguments are not JSON or do not match the schema, or the tool returned an error); `child-results` after
 * `fork-children`. Results queue in order, one event per step.
 *
 * Cancellation: abort `signal` — a generation in flight ends as "cancelled", the step completes and is
 * checkpointed, then the run pauses with its pending events kept; `run({ type: 'resume' })` continues.
 * Mid-generation moves: the cut generation (its prompt and the token ids so far) stays in the loop state
 * (`LoopState.cut`, checkpointed), and `run({ type: 'resume' })` — here or on another host that restored the
 * checkpoint — first continues it: the engine prefills the prompt plus those ids and generates the rest of the
 * budget, so with greedy decoding and the same model file the whole generation is token-identical to one that
 * never stopped (with temperature > 0 the continuation samples afresh from the same seed); the agent then gets
 * the whole text. `run()` with a new message instead delivers the cut
 * generation to the agent as it is ("cancelled").
 * Past the context: when a prompt and its reply budget do not fit the engine's context, the oldest turns are left
 * out of the prompt (llm/compaction.ts); the decision is kept in the loop state (`LoopState.compaction`), so the
 * same prompt goes to the model wherever the session runs, and a `compaction` session event records it.
 * A tool call that fails as a call (trap, time or memory limit) rejects the run with `runtime/step-failed`:
 * the runtime then restores the last checkpoint (runtime.ts).
 */
import { FerryError } from '../errors.ts';
import type { ChatTemplate } from '../llm/chat-template.ts';
import type { Engine, FinishReason, GenerateRequest, GenerationStats, Prompt, SpeculativeTally } from '../llm/engine.ts';
import { fitToContext, type Compaction, type Fitted } from '../llm/compaction.ts';
import type { ChatMessage } from '../llm/messages.ts';
import { preparePrompt } from '../llm/prompt.ts';
import { MAX_WIRE_PREFIXES, prefixBlockKeys } from '../llm/prefix-keys.ts';
import { toolInstructions, type ToolSpec } from '../llm/tool-calls.ts';
import { generateWithTools, type GeneratedSoFar, type OpenCall, type ToolChoice, type ToolGenerationEvent } from '../llm/tool-generation.ts';
import type { SessionEvent } from '../session/index.ts';
import { checkJsonSchema } from './json-schema.ts';
import { MAX_TEXT_BYTES, type Agent, type AgentAction, type AgentEvent, type AgentInfo, type ChildResult, type SubTask, type ToolInfo } from './wit.ts';

/** A tool as the loop calls it: in this thread (inProcessTool) or in its own worker with limits (tool-worker.ts). */
export interface ToolHost {
  readonly info: ToolInfo;
  /**
   * One call. Resolves with the tool's own result (ok, or its error message for the model). Rejects with a
   * FerryError when the call itself failed — a trap, the time or memory limit — which fails the step.
   */
  invoke(args: string, options?: { signal?: AbortSignal }): Promise<ToolOutcome>;
}

export interface ToolOutcome {
  ok: boolean;
  output: string;
}

/** A generation as it streams: its prompt and how it samples (0: greedy). */
export interface StreamingGeneration {
  prompt: Prompt;
  temperature: number;
}

/** A session's sampling settings (GenerateRequest's); temperature 0 is greedy. */
export interface Sampling {
  maxTokens: number;
  temperature: number;
  seed: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
}

export const DEFAULT_SAMPLING: Sampling = { maxTokens: 256, temperature: 0, seed: 0 };

/**
 * What a run is given: the agent's task, a message, a resume of what is pending — or `tools`: calls the host makes
 * itself with the agent's tools (content the person adds: files into a workspace, sources into docs), recorded and
 * checkpointed as a step of their own. The agent decides nothing in it and is not woken by it; it finds the content
 * through its tools like anything else there.
 */
export type RunInput = { type: 'start'; task: string } | { type: 'user'; text: string } | { type: 'resume' } | { type: 'tools'; calls: HostCall[] };

/** One call of a host step: a tool the agent has, and its arguments (JSON text, checked against the tool's schema). */
export interface HostCall {
  tool: string;
  args: string;
}

/** The most calls, and characters of arguments in all, one host step takes: a checkpoint stays a few MB at most. */
export const HOST_STEP_LIMITS = { calls: 500, argsChars: 4 * 1024 * 1024 } as const;

/**
 * A generation cut short by a cancel (a stop, a move to another host): enough to continue it exactly. Its
 * `generation-result` (finishReason "cancelled") is the first pending event until it is continued or delivered.
 */
export interface CutGeneration {
  /** The request's prompt as the engine received it (messages, with tool instructions, or rendered text). */
  prompt: Prompt;
  /** The engine's tokenizer: the ids below are reused only by an engine with the same one. */
  tokenizerId: string;
  /** Every id generated so far, and their text. */
  tokens: number[];
  text: string;
  /** The whole generation's budget and settings. */
  maxTokens: number;
  temperature: number;
  stop: string[];
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  /**
   * The sampler's state: its seed and the position of the next token in the sequence (prompt ids + `tokens`).
   * Absent in checkpoints from before sampling moved with a session.
   */
  sampler?: { seed: number; position: number };
  /** A tool call the cut fell inside: it is written again from there (llm/tool-generation.ts). */
  openCall?: OpenCall;
}

/** The loop's own state between steps: checkpointed with the components, so a restored loop continues exactly. */
export interface LoopState {
  /** idle: waiting for the user; running: events pending; done: the agent finished its task. */
  status: 'idle' | 'running' | 'done';
  /** Events not yet delivered to the agent, oldest first. */
  pending: AgentEvent[];
  steps: number;
  summary: string;
  /** Present while a cut generation waits to be continued (see CutGeneration). */
  cut?: CutGeneration;
  /** The oldest turns left out of the prompt once the conversation outgrew the context (llm/compaction.ts). */
  compaction?: Compaction;
  /** What the newest generation left in its engine's KV cache (see HeldContext); absent: not known. */
  held?: HeldContext;
}

/**
 * The newest generation's prompt and output ids as prefix block keys (llm/prefix-keys.ts), raw, in the generating
 * engine's tokenizer: the node that ran it holds that prefix in its KV cache, so a fork, a rollback's branch or the
 * next step from here may be placed there. Keys, not ids, keep a checkpoint small (one short string per 64 tokens).
 */
export interface HeldContext {
  tokenizerId: string;
  keys: string[];
}

export type LoopEvent =
  /** `host`: a step of the host's own calls (RunInput `tools`). */
  | { type: 'step'; step: number; input: AgentEvent['tag'] | 'host' }
  | { type: 'token'; text: string; id: number | null }
  /** `speculative`: drafted here and verified elsewhere, with how the drafts fared (the device's measured acceptance). */
  | { type: 'generation'; text: string; finishReason: FinishReason; tokens: number[]; speculative?: SpeculativeTally }
  | { type: 'tool-call'; callId: string; tool: string; args: string }
  | { type: 'tool-result'; callId: string; tool: string; ok: boolean; output: string }
  | { type: 'reply'; text: string }
  | { type: 'children'; results: ChildResult[] }
  | { type: 'checkpoint'; step: number; id: string }
  | { type: 'done'; summary: string }
  | { type: 'idle' }
  | { type: 'paused'; reason: 'cancelled' | 'step-limit' };

/** What one step did, handed to `afterStep` (which checkpoints it). */
export interface StepRecord {
  step: number;
  /** What the agent was given; null for a host step (RunInput `tools`). */
  input: AgentEvent | null;
  actions: AgentAction[];
  /** The step as session events (user input, generations with token ids, tool calls and results, replies). */
  events: SessionEvent[];
  /** The loop state after the step. */
  state: LoopState;
  /** Wall time of the step, and the parts spent in the model, the tools and the agent's own step(). */
  timing: { totalMs: number; modelMs: number; toolMs: number; agentMs: number };
  tokens: number;
  /** What the step's generations (and children run here) read and wrote, as a paid engine bills it (runtime.ts prices it). */
  usage: TokenUsage;
  /** What the step's children run elsewhere cost on their nodes, micro-dollars (their own checkpoints recorded it). */
  childCostMicros: number;
}

/**
 * What a step's children cost it, filled in by whoever runs them: what children run in this runtime read and wrote
 * (`usage`, billed by this engine's price like the step's own generations), and what children run elsewhere cost on
 * their paid nodes (`costMicros`, as their own checkpoints recorded it).
 */
export interface ChildSpend {
  usage: TokenUsage;
  costMicros: number;
}

/**
 * Runs a step's forked children (parallel/: here one after another, or as child sessions on the space's nodes).
 * Resolves with one result per task, in task order; a rejection (every node gone) fails the step.
 */
export type LoopChildren = (tasks: readonly SubTask[], signal: AbortSignal | undefined, spent: ChildSpend) => Promise<ChildResult[]>;

/** Tokens read (every prompt token, cached or not: paid APIs bill them all) and generated. */
export interface TokenUsage {
  promptTokens: number;
  outputTokens: number;
}

export interface LoopOptions {
  agent: Agent;
  tools?: readonly ToolHost[];
  engine: Engine;
  /**
   * Renders prompts to text here; by default the engine renders the messages with its model's own chat template
   * (llm/prompt.ts), which gives every engine the same token ids.
   */
  template?: ChatTemplate;
  sampling?: Partial<Sampling>;
  /** The engine's KV slot (normally the session id). */
  slot?: string;
  /**
   * Runs a step's forked children; without it, fork-children answers every child with ok=false. A rejection fails
   * the step as `runtime/step-failed`, like a tool call that could not complete.
   */
  runChildren?: LoopChildren;
  /**
   * Which tool calls a generation may or must make (default 'auto': the model decides; a call it starts is
   * constrained by the tools' schemas where the engine takes a grammar). 'required' makes every generation one call.
   */
  toolChoice?: ToolChoice;
  /** Called after every step; may return a checkpoint id, which is streamed as a `checkpoint` event. */
  afterStep?: (record: StepRecord) => Promise<string | void>;
  /** A run stops (paused: step-limit) after this many steps, so a looping agent cannot run forever. */
  maxStepsPerRun?: number;
  now?: () => number;
}

export const DEFAULT_MAX_STEPS_PER_RUN = 200;

export class AgentLoop {
  readonly info: AgentInfo;
  readonly tools: ReadonlyMap<string, ToolHost>;
  #state: LoopState = { status: 'idle', pending: [], steps: 0, summary: '' };
  #generating: StreamingGeneration | undefined;
  /** A second after-step hook the owner may set later (the runtime checkpoints through it). */
  onStep?: (record: StepRecord) => Promise<string | void>;
  readonly #options: LoopOptions;
  readonly #template: ChatTemplate | undefined;
  readonly #sampling: Sampling;
  /** The tools offered to the model: those the agent asked for that this host has. */
  readonly #specs: ToolSpec[];
  #running = false;

  constructor(options: LoopOptions) {
    this.#options = options;
    this.info = options.agent.describe();
    this.tools = new Map((options.tools ?? []).map((t) => [t.info.name, t]));
    this.#template = options.template;
    this.#sampling = { ...DEFAULT_SAMPLING, ...options.sampling };
    this.#specs = this.info.tools.flatMap((name) => {
      const tool = this.tools.get(name);
      return tool ? [{ name, description: tool.info.description, parameters: parseSchema(tool.info) }] : [];
    });
  }

  /** A copy of the loop state (what a checkpoint stores). */
  /** The generation streaming now, if one is: a move warms its destination with its prompt (host/move-ahead.ts). */
  get generating(): StreamingGeneration | undefined {
    return this.#generating;
  }

  get state(): LoopState {
    return structuredClone(this.#state);
  }

  /** Puts the loop into a checkpointed state (the agent and tools are restored separately, by their images). */
  setState(state: LoopState): void {
    if (this.#running) throw new FerryError('runtime/busy', 'The agent is running; cancel the run before restoring its state.');
    this.#state = structuredClone(state);
  }

  /**
   * Delivers `input` and runs steps until the agent is idle (no actions, nothing pending), done, the signal is
   * aborted, or the step limit is reached. Streams what happens; one run at a time.
   */
  async *run(input: RunInput, signal?: AbortSignal): AsyncGenerator<LoopEvent, LoopState> {
    if (this.#running) throw new FerryError('runtime/busy', 'The agent is already running; wait for the run to end or cancel it.');
    if (input.type === 'tools') return yield* this.#runHostStep(input.calls);
    if (this.#state.status === 'done' && input.type !== 'user') {
      throw new FerryError('runtime/agent-done', 'The agent has finished its task; send a message to continue, or fork from an earlier checkpoint.');
    }
    // A new message delivers a cut generation to the agent as it is; only a resume continues it.
    if (input.type !== 'resume') delete this.#state.cut;
    if (input.type !== 'resume') this.#state.pending.push(input.type === 'start' ? { tag: 'start', val: text(input.task, 'task') } : { tag: 'user-message', val: text(input.text, 'message') });
    this.#running = true;
    try {
      const maxSteps = this.#options.maxStepsPerRun ?? DEFAULT_MAX_STEPS_PER_RUN;
      let steps = 0;
      for (;;) {
        const next = this.#state.pending[0];
        if (next === undefined) {
          if (this.#state.status !== 'done') this.#state.status = 'idle';
          yield this.#state.status === 'done' ? { type: 'done', summary: this.#state.summary } : { type: 'idle' };
          break;
        }
        // A message or task given to a run stopped before it began still gets its step (its generation cut at
        // once), so a checkpoint holds it: a stop never drops input that the run was given.
        if (signal?.aborted && (steps > 0 || input.type === 'resume')) {
          yield { type: 'paused', reason: 'cancelled' };
          break;
        }
        if (steps++ >= maxSteps) {
          yield { type: 'paused', reason: 'step-limit' };
          break;
        }
        this.#state.status = 'running';
        if (this.#state.cut && next.tag === 'generation-result') yield* this.#continueCut(this.#state.cut, next, signal);
        else yield* this.#step(next, signal);
      }
      return this.state;
    } finally {
      this.#running = false;
    }
  }

  /**
   * Runs the host's own calls as one step (RunInput `tools`), between the agent's steps: only while nothing is
   * pending, so the agent's work is never interleaved with it and a failed call (its tool restored from the last
   * checkpoint by the runtime) drops nothing of the agent's. The loop's status is left as it was.
   */
  async *#runHostStep(calls: readonly HostCall[]): AsyncGenerator<LoopEvent, LoopState> {
    checkHostCalls(calls);
    if (this.#state.pending.length > 0) {
      throw new FerryError('runtime/busy', 'The agent has work waiting (a reply was stopped or moved mid-way): send a message or let it finish, then add the content.');
    }
    this.#running = true;
    try {
      const now = this.#options.now ?? Date.now;
      const t0 = performance.now();
      const step = this.#state.steps + 1;
      yield { type: 'step', step, input: 'host' };
      const events: SessionEvent[] = [];
      let toolMs = 0;
      for (const [i, call] of calls.entries()) {
        const callId = `host-${step}-${i + 1}`;
        events.push({ type: 'tool-call', callId, tool: label(call.tool), args: call.args, at: now() });
        yield { type: 'tool-call', callId, tool: call.tool, args: call.args };
        const t = performance.now();
        // No signal: a host step is short, and half of one would be content half added.
        const outcome = await this.#invoke(call.tool, call.args, undefined);
        toolMs += performance.now() - t;
        const output = truncate(outcome.output);
        events.push({ type: 'tool-result', callId, ok: outcome.ok, output, at: now() });
        yield { type: 'tool-result', callId, tool: call.tool, ok: outcome.ok, output };
      }
      this.#state.steps = step;
      const totalMs = performance.now() - t0;
      const none = { promptTokens: 0, outputTokens: 0 };
      const record: StepRecord = { step, input: null, actions: [], events, state: this.state, timing: { totalMs, modelMs: 0, toolMs, agentMs: 0 }, tokens: 0, usage: none, childCostMicros: 0 };
      const id = (await this.#options.afterStep?.(record)) ?? (await this.onStep?.(record));
      if (id) yield { type: 'checkpoint', step, id };
      return this.state;
    } finally {
      this.#running = false;
    }
  }

  async *#step(input: AgentEvent, signal: AbortSignal | undefined): AsyncGenerator<LoopEvent> {
    const now = this.#options.now ?? Date.now;
    const t0 = performance.now();
    const timing = { totalMs: 0, modelMs: 0, toolMs: 0, agentMs: 0 };
    const step = this.#state.steps + 1;
    yield { type: 'step', step, input: input.tag };
    const events: SessionEvent[] = [];
    if (input.tag === 'start' || input.tag === 'user-message') events.push({ type: 'user', text: input.val, at: now() });
    let t = performance.now();
    const actions = this.#options.agent.step(input);
    timing.agentMs = performance.now() - t;
    // The input is consumed only once the agent has taken it; results queue behind what is already pending.
    const pending = this.#state.pending.slice(1);
    let tokens = 0;
    const usage: TokenUsage = { promptTokens: 0, outputTokens: 0 };
    const spent: ChildSpend = { usage: { promptTokens: 0, outputTokens: 0 }, costMicros: 0 };
    for (const action of actions) {
      if (this.#state.status === 'done') break;
      switch (action.tag) {
        case 'generate': {
          t = performance.now();
          const generation = yield* this.#generate(action.val.messages, action.val.params, signal);
          timing.modelMs += performance.now() - t;
          tokens += generation.tokens.length;
          addUsage(usage, usageOf(generation.stats));
          if (generation.widened) {
            this.#state.compaction = generation.widened;
            events.push({ type: 'compaction', turns: generation.widened.turns, at: now() });
          }
          events.push(generation.event);
          pending.push({ tag: 'generation-result', val: { text: generation.text, finishReason: generation.finishReason } });
          // Keep what it takes to continue a cut generation, unless a result is already waiting ahead of it.
          if (generation.finishReason === 'cancelled' && pending.length === 1) this.#state.cut = generation.cut;
          break;
        }
        case 'call-tool': {
          const { id, name, args } = action.val;
          events.push({ type: 'tool-call', callId: label(id), tool: label(name), args, at: now() });
          yield { type: 'tool-call', callId: id, tool: name, args };
          t = performance.now();
          const outcome = await this.#invoke(name, args, signal);
          timing.toolMs += performance.now() - t;
          const output = truncate(outcome.output);
          events.push({ type: 'tool-result', callId: label(id), ok: outcome.ok, output, at: now() });
          yield { type: 'tool-result', callId: id, tool: name, ok: outcome.ok, output };
          pending.push({ tag: 'tool-result', val: { id, name, ok: outcome.ok, output } });
          break;
        }
        case 'reply':
          events.push({ type: 'reply', text: truncate(action.val), at: now() });
          yield { type: 'reply', text: action.val };
          break;
        case 'fork-children': {
          t = performance.now();
          const results = await this.#children(action.val, signal, spent);
          addUsage(usage, spent.usage);
          spent.usage = { promptTokens: 0, outputTokens: 0 };
          timing.toolMs += performance.now() - t;
          yield { type: 'children', results };
          pending.push({ tag: 'child-results', val: results });
          break;
        }
        case 'done':
          this.#state.status = 'done';
          this.#state.summary = action.val;
          pending.length = 0;
          break;
      }
    }
    this.#state.pending = pending;
    this.#state.steps = step;
    if (this.#state.status !== 'done') this.#state.status = pending.length > 0 ? 'running' : 'idle';
    timing.totalMs = performance.now() - t0;
    const record: StepRecord = { step, input, actions, events, state: this.state, timing, tokens, usage, childCostMicros: spent.costMicros };
    const id = (await this.#options.afterStep?.(record)) ?? (await this.onStep?.(record));
    if (id) yield { type: 'checkpoint', step, id };
  }

  /** One generation; `widened` is a new compaction its prompt needed (the step records it once the generation is done). */
  async *#generate(messages: readonly { role: string; content: string }[], params: { maxTokens?: number | undefined; temperature?: number | undefined; stop: string[] }, signal: AbortSignal | undefined) {
    const engine = this.#options.engine;
    // The agent may ask for fewer tokens than the session allows, never more.
    const maxTokens = Math.max(1, Math.min(params.maxTokens ?? this.#sampling.maxTokens, this.#sampling.maxTokens));
    const fitted = await this.#fit(this.#withTools(messages.map(toChatMessage)), maxTokens);
    const request = this.#request({
      prompt: this.#promptOf(fitted.messages),
      maxTokens,
      sampling: { ...this.#sampling, temperature: params.temperature ?? this.#sampling.temperature },
      stop: params.stop,
    }, signal);
    const done = yield* this.#stream(request);
    const tokens = [...done.tokens];
    yield { type: 'generation', text: done.text, finishReason: done.finishReason, tokens, ...(done.speculative ? { speculative: done.speculative } : {}) } satisfies LoopEvent;
    const cut: CutGeneration = { ...cutOf(request, done), prompt: request.prompt, tokenizerId: engine.info.tokenizerId, tokens, text: done.text };
    await this.#hold(request.prompt, tokens);
    const widened = fitted.widened ? fitted.compaction : undefined;
    return { text: done.text, finishReason: done.finishReason, tokens, event: this.#generationEvent(done, tokens, done.text), cut, stats: done.stats, widened };
  }

  /** Records what a generation left in the engine's cache (LoopState.held): once per generation, never per token. */
  async #hold(prompt: Prompt, tokens: readonly number[]): Promise<void> {
    const { tokenizerId } = this.#options.engine.info;
    delete this.#state.held;
    // An engine that cannot name its tokenizer (an upstream API) holds nothing another node could match.
    if (tokenizerId === '') return;
    try {
      const ids = await preparePrompt(this.#options.engine, prompt);
      this.#state.held = { tokenizerId, keys: prefixBlockKeys([...ids, ...tokens]).slice(0, MAX_WIRE_PREFIXES) };
    } catch {
      // Only a placement hint: a prompt this engine cannot tokenize again leaves it unknown.
    }
  }

  /** Messages → the prompt this engine gets: rendered here when the loop has a template, else by the engine. */
  #promptOf(chat: readonly ChatMessage[]): Prompt {
    return this.#template ? { text: this.#template.render(chat) } : { messages: [...chat] };
  }

  /**
   * The chat with the recorded compaction, widened where it does not fit this engine's context with the reply's
   * budget. Counting needs the engine's tokenizer and a template: an upstream without them gets the record as it is.
   */
  async #fit(chat: ChatMessage[], maxTokens: number): Promise<Fitted> {
    const engine = this.#options.engine;
    const { contextSize, tokenizerId, chatTemplate } = engine.info;
    const countable = tokenizerId !== '' && (this.#template !== undefined || chatTemplate !== undefined);
    const count = async (messages: readonly ChatMessage[]) => (await preparePrompt(engine, this.#promptOf(messages))).length;
    const fitted = await fitToContext(chat, { room: contextSize - maxTokens, recorded: this.#state.compaction, ...(countable ? { count } : {}) });
    if (fitted.tokens !== undefined && fitted.tokens >= contextSize) {
      throw new FerryError('llm/context-full', `The newest message does not fit even with every earlier turn left out: the prompt has ${fitted.tokens} tokens; the context holds ${contextSize}. Shorten the message or load the model with a larger context.`, {
        details: { promptTokens: fitted.tokens, contextSize },
      });
    }
    return fitted;
  }

  /** Runs a generation with the granted tools, streaming its tokens; returns its done event. */
  async *#stream(request: GenerateRequest, sofar?: GeneratedSoFar): AsyncGenerator<LoopEvent, Extract<ToolGenerationEvent, { type: 'done' }>> {
    const engine = this.#options.engine;
    const use = { tools: this.#specs, ...(this.#options.toolChoice ? { choice: this.#options.toolChoice } : {}) };
    this.#generating = { prompt: request.prompt, temperature: request.temperature ?? 0 };
    try {
      for await (const event of generateWithTools(engine, request, use, sofar)) {
        if (event.type === 'done') return event;
        yield { type: 'token', text: event.text, id: event.id } satisfies LoopEvent;
      }
    } finally {
      this.#generating = undefined;
    }
    throw new FerryError('llm/no-done', `Engine ${engine.info.id} ended a generation without its done event; the engine adapter is faulty.`);
  }

  /**
   * Continues a cut generation (a step of its own, checkpointed): prompt + the ids so far, the rest of the budget,
   * with the cut's own settings and sampler state, so a sampled generation goes on as if never cut. Cut again, the
   * state keeps the longer cut; finished, the agent's pending result becomes the whole generation.
   */
  async *#continueCut(cut: CutGeneration, input: AgentEvent, signal: AbortSignal | undefined): AsyncGenerator<LoopEvent> {
    const t0 = performance.now();
    const step = this.#state.steps + 1;
    yield { type: 'step', step, input: input.tag };
    const engine = this.#options.engine;
    let finishReason: FinishReason = 'length';
    let whole: CutGeneration = cut;
    const events: SessionEvent[] = [];
    const usage: TokenUsage = { promptTokens: 0, outputTokens: 0 };
    if (cut.tokens.length < cut.maxTokens) {
      const request = this.#request({
        prompt: cut.prompt,
        maxTokens: cut.maxTokens,
        // The cut's own settings: the session's may have changed since, the generation's did not.
        sampling: { temperature: cut.temperature, seed: cut.sampler?.seed ?? this.#sampling.seed, topK: cut.topK, topP: cut.topP, minP: cut.minP, repeatPenalty: cut.repeatPenalty },
        stop: cut.stop,
      }, signal);
      const done = yield* this.#stream(request, await this.#sofar(cut));
      finishReason = done.finishReason;
      addUsage(usage, usageOf(done.stats));
      // Ids and text past the cut: what this step generated (a call written again from its start comes out the same).
      const tokens = done.tokens.slice(cut.tokens.length);
      const text = done.text.slice(cut.text.length);
      yield { type: 'generation', text, finishReason, tokens, ...(done.speculative ? { speculative: done.speculative } : {}) } satisfies LoopEvent;
      events.push(this.#generationEvent(done, tokens, text, true));
      whole = { ...cutOf(request, done), prompt: cut.prompt, tokenizerId: engine.info.tokenizerId, tokens: [...done.tokens], text: done.text };
      await this.#hold(cut.prompt, whole.tokens);
    }
    if (finishReason === 'cancelled') this.#state.cut = whole;
    else delete this.#state.cut;
    this.#state.pending = [{ tag: 'generation-result', val: { text: whole.text, finishReason } }, ...this.#state.pending.slice(1)];
    this.#state.steps = step;
    const totalMs = performance.now() - t0;
    const tokens = whole.tokens.length - cut.tokens.length;
    const record: StepRecord = { step, input, actions: [], events, state: this.state, timing: { totalMs, modelMs: totalMs, toolMs: 0, agentMs: 0 }, tokens, usage, childCostMicros: 0 };
    const id = (await this.#options.afterStep?.(record)) ?? (await this.onStep?.(record));
    if (id) yield { type: 'checkpoint', step, id };
  }

  /**
   * A cut's generation as this engine continues it: its ids where the tokenizer is the same, else its text
   * tokenized again (not token-identical then); an open call's start is kept either way.
   */
  async #sofar(cut: CutGeneration): Promise<GeneratedSoFar> {
    const engine = this.#options.engine;
    const open = cut.openCall;
    const openOk = open !== undefined && Number.isSafeInteger(open.tokens) && Number.isSafeInteger(open.text) && open.tokens >= 0 && open.tokens <= cut.tokens.length && open.text >= 0 && open.text <= cut.text.length;
    if (cut.tokenizerId !== '' && cut.tokenizerId === engine.info.tokenizerId) return { tokens: cut.tokens, text: cut.text, ...(openOk ? { openCall: open } : {}) };
    if (!openOk) return { tokens: await engine.tokenize(cut.text), text: cut.text };
    const before = await engine.tokenize(cut.text.slice(0, open.text));
    return { tokens: [...before, ...(await engine.tokenize(cut.text.slice(open.text)))], text: cut.text, openCall: { tokens: before.length, text: open.text } };
  }

  /** A request with the given sampling settings (the session's by default), slot and signal around what the step decides. */
  #request(what: { prompt: Prompt; maxTokens: number; sampling: Omit<Partial<Sampling>, 'maxTokens'> & { temperature: number }; stop: readonly string[] }, signal: AbortSignal | undefined): GenerateRequest {
    const { temperature, seed, topK, topP, minP, repeatPenalty } = what.sampling;
    return {
      prompt: what.prompt,
      maxTokens: what.maxTokens,
      temperature,
      seed: seed ?? this.#sampling.seed,
      ...(topK === undefined ? {} : { topK }),
      ...(topP === undefined ? {} : { topP }),
      ...(minP === undefined ? {} : { minP }),
      ...(repeatPenalty === undefined ? {} : { repeatPenalty }),
      ...(what.stop.length > 0 ? { stop: [...what.stop] } : {}),
      ...(this.#options.slot === undefined ? {} : { slot: this.#options.slot }),
      ...(signal ? { signal } : {}),
    };
  }

  /** The session event recording a finished (or cut) generation: ids, text, engine, timings; `continues` a cut one. */
  #generationEvent(done: Extract<ToolGenerationEvent, { type: 'done' }>, tokens: number[], text: string, continues = false): SessionEvent {
    const info = done.engine ?? this.#options.engine.info;
    return {
      type: 'generation',
      tokens,
      text,
      engine: { id: label(info.id), kind: info.kind, model: label(info.model) },
      timings: { promptMs: done.stats.prefillMs, generateMs: done.stats.decodeMs },
      finish: done.finishReason === 'cancelled' ? 'abort' : done.finishReason,
      ...(continues ? { continues: true as const } : {}),
      at: (this.#options.now ?? Date.now)(),
    };
  }

  /** The tool instructions go at the end of the system message (a new one when the agent sent none). */
  #withTools(messages: ChatMessage[]): ChatMessage[] {
    if (this.#specs.length === 0) return messages;
    const instructions = toolInstructions(this.#specs);
    const [first, ...rest] = messages;
    if (first?.role === 'system') return [{ role: 'system', content: `${first.content}\n\n${instructions}` }, ...rest];
    return [{ role: 'system', content: instructions }, ...messages];
  }

  async #invoke(name: string, args: string, signal: AbortSignal | undefined): Promise<ToolOutcome> {
    const tool = this.tools.get(name);
    if (!tool || !this.info.tools.includes(name)) {
      const available = this.#specs.map((s) => s.name);
      return { ok: false, output: `There is no tool "${name}". Available tools: ${available.length > 0 ? available.join(', ') : 'none'}.` };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(args);
    } catch (err) {
      return { ok: false, output: `The arguments for "${name}" are not valid JSON (${(err as Error).message}). Send one JSON object.` };
    }
    const problems = checkJsonSchema(parseSchema(tool.info), parsed);
    if (problems.length > 0) {
      return { ok: false, output: `The arguments for "${name}" do not match its schema:\n- ${problems.slice(0, 8).join('\n- ')}\nSchema: ${tool.info.argsSchema}` };
    }
    try {
      return await tool.invoke(args, signal ? { signal } : {});
    } catch (cause) {
      throw new FerryError('runtime/step-failed', `Step ${this.#state.steps + 1} failed: the call to tool "${name}" did not complete (${cause instanceof Error ? cause.message : String(cause)}).`, {
        cause,
        details: { tool: name, step: this.#state.steps + 1 },
      });
    }
  }

  /** The host's children runner, held to its contract: one result per task, same ids, same order. */
  async #children(tasks: SubTask[], signal: AbortSignal | undefined, spent: ChildSpend): Promise<ChildResult[]> {
    const run = this.#options.runChildren;
    if (!run) return tasks.map((t) => ({ id: t.id, ok: false, output: 'This host cannot run child agents.' }));
    const step = this.#state.steps + 1;
    let results: ChildResult[];
    try {
      results = await run(tasks, signal, spent);
    } catch (cause) {
      if (cause instanceof FerryError && cause.code === 'runtime/step-failed') throw cause;
      throw new FerryError('runtime/step-failed', `Step ${step} failed: its ${tasks.length} forked children could not run (${cause instanceof Error ? cause.message : String(cause)}).`, { cause, details: { step, children: tasks.length } });
    }
    const wrong = results.length !== tasks.length ? `${results.length} results for ${tasks.length} children` : results.findIndex((r, i) => r.id !== tasks[i]!.id || typeof r.ok !== 'boolean' || typeof r.output !== 'string');
    if (wrong !== -1) {
      const what = typeof wrong === 'string' ? wrong : `result ${wrong} is not child "${tasks[wrong]!.id}"'s`;
      throw new FerryError('runtime/step-failed', `Step ${step} failed: the host's children runner broke its contract (${what}).`, { details: { step } });
    }
    return results.map((r) => ({ id: r.id, ok: r.ok, output: truncate(r.output) }));
  }
}

function parseSchema(info: ToolInfo): Record<string, unknown> {
  try {
    const schema: unknown = JSON.parse(info.argsSchema);
    if (typeof schema === 'object' && schema !== null && !Array.isArray(schema)) return schema as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new FerryError('component/bad-output', `Tool "${info.name}" describes its arguments with an args-schema that is not a JSON object; fix the tool.`);
}

/** What a cut keeps of a generation's request and end: its settings, the sampler's state and any open call. */
function cutOf(request: GenerateRequest, done: Extract<ToolGenerationEvent, { type: 'done' }>): Omit<CutGeneration, 'prompt' | 'tokenizerId' | 'tokens' | 'text'> {
  return {
    maxTokens: request.maxTokens,
    temperature: request.temperature ?? 0,
    stop: [...(request.stop ?? [])],
    ...(request.topK === undefined ? {} : { topK: request.topK }),
    ...(request.topP === undefined ? {} : { topP: request.topP }),
    ...(request.minP === undefined ? {} : { minP: request.minP }),
    ...(request.repeatPenalty === undefined ? {} : { repeatPenalty: request.repeatPenalty }),
    sampler: { seed: request.seed ?? 0, position: done.position },
    ...(done.openCall ? { openCall: done.openCall } : {}),
  };
}

export function addUsage(to: TokenUsage, from: TokenUsage): void {
  to.promptTokens += from.promptTokens;
  to.outputTokens += from.outputTokens;
}

function usageOf(stats: GenerationStats): TokenUsage {
  return { promptTokens: stats.promptTokens, outputTokens: stats.completionTokens };
}

function toChatMessage(m: { role: string; content: string }): ChatMessage {
  const role = m.role === 'system' || m.role === 'user' || m.role === 'assistant' || m.role === 'tool' ? m.role : 'user';
  return { role, content: m.content };
}

function checkHostCalls(calls: readonly HostCall[]): void {
  if (!Array.isArray(calls) || calls.length === 0 || calls.length > HOST_STEP_LIMITS.calls) {
    throw new FerryError('runtime/bad-input', `A host step takes 1 to ${HOST_STEP_LIMITS.calls} tool calls; split the content into several steps.`);
  }
  let chars = 0;
  for (const call of calls) {
    if (typeof call?.tool !== 'string' || typeof call.args !== 'string') throw new FerryError('runtime/bad-input', 'Each call of a host step names a tool and gives its arguments as JSON text.');
    chars += call.args.length;
  }
  if (chars > HOST_STEP_LIMITS.argsChars) {
    throw new FerryError('runtime/bad-input', `A host step's calls carry ${chars} characters; at most ${HOST_STEP_LIMITS.argsChars} fit in one step: split the content into several.`);
  }
}

function text(value: string, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_TEXT_BYTES) throw new FerryError('runtime/bad-input', `The ${what} must be a string of at most ${MAX_TEXT_BYTES} characters.`);
  return value;
}

/** Session labels are at most 256 characters (session/schema.ts). */
function label(value: string): string {
  return value.length <= 256 ? value : value.slice(0, 256);
}

/** Tool output and replies are capped at the session's text limit; the reader is told it was cut. */
function truncate(output: string): string {
  const limit = 1 << 20;
  return output.length <= limit ? output : `${output.slice(0, limit - 64)}\n…[output truncated at ${limit} characters]`;
}
