/**
 * The relay's OpenAI-compatible API backed by its workers (issue 6): the embedded worker's engine, and every
 * attached cloud worker's engine reached over its socket — a `generate` message out, its `generation` events back,
 * `cancel` when the API client goes away. A request for a model goes to the least-busy engine that serves it.
 * Device nodes never serve the API: they run only their own space's sessions.
 */
import { FerryError, errorCodeOf } from '../../src/core/errors.ts';
import type { Engine, EngineInfo, GenerateEvent, GenerateRequest } from '../../src/core/llm/engine.ts';
import type { ToolUse } from '../../src/core/llm/tool-generation.ts';
import type { DeviceToVerifier, RelayToWorker, VerifierToDevice, WorkerProfile, WorkerToRelay } from '../../src/core/protocol/index.ts';
import { servingEngine, type EngineSource, type ServingEngine } from '../api/openai.ts';

type Generation = Extract<WorkerToRelay, { type: 'generation' | 'generation-failed' }>;

/** A device socket's sessions on a worker (api/verify.ts routes them): messages out, the worker's answers back. */
export interface VerifyChannel {
  send(m: DeviceToVerifier): void;
  /** The device's socket closed: the worker releases the channel's sessions. */
  end(): void;
}

interface ChannelEnds {
  answer(m: VerifierToDevice): void;
  /** The worker left: every session on the channel is gone. */
  lost(reason: string): void;
}

/** A cloud worker's engine, over its socket. */
export class WorkerEngine implements ServingEngine {
  readonly info: EngineInfo;
  /** Its engine verifies drafts (its profile says so): device verify sessions may go to it. */
  readonly verifies: boolean;
  #next = 1;
  #nextChannel = 1;
  readonly #channels = new Map<number, ChannelEnds>();
  readonly #calls = new Map<number, (m: Generation | { type: 'lost'; reason: string }) => void>();

  constructor(profile: WorkerProfile, private readonly send: (m: RelayToWorker) => void) {
    this.info = { id: profile.engine, kind: 'remote', model: profile.model, tokenizerId: profile.tokenizer, contextSize: profile.contextSize, kvState: false, grammar: true, device: `${profile.name}: ${profile.device}` };
    this.verifies = profile.verifies === true;
  }

  /** Verify channels open (device sockets with sessions here). */
  get verifyChannels(): number {
    return this.#channels.size;
  }

  /** A channel for one device socket's sessions; `lost` is called once if the worker leaves first. */
  openVerifyChannel(ends: ChannelEnds): VerifyChannel {
    const channel = this.#nextChannel++;
    this.#channels.set(channel, ends);
    return {
      send: (message) => {
        if (this.#channels.has(channel)) this.send({ type: 'verify', channel, message });
      },
      end: () => {
        if (this.#channels.delete(channel)) this.send({ type: 'verify-end', channel });
      },
    };
  }

  /** A `verified` message from the worker. */
  deliverVerified(m: Extract<WorkerToRelay, { type: 'verified' }>): void {
    this.#channels.get(m.channel)?.answer(m.message);
  }

  /** Generations in flight. */
  get active(): number {
    return this.#calls.size;
  }

  generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    return this.#call(request);
  }

  /** The worker runs the phases: it holds the tokenizer they need. */
  generateWithTools(request: GenerateRequest, use: ToolUse): AsyncGenerator<GenerateEvent> {
    return this.#call(request, use);
  }

  async *#call(request: GenerateRequest, tools?: ToolUse): AsyncGenerator<GenerateEvent> {
    const { signal, ...rest } = request;
    const wire = tools ? { ...rest, tools } : rest;
    const call = this.#next++;
    const queue: (Generation | { type: 'lost'; reason: string })[] = [];
    let wake: (() => void) | undefined;
    this.#calls.set(call, (m) => {
      queue.push(m);
      wake?.();
    });
    const cancel = (): void => this.send({ type: 'cancel', call });
    signal?.addEventListener('abort', cancel, { once: true });
    let finished = false;
    try {
      this.send({ type: 'generate', call, request: wire });
      for (;;) {
        const m = queue.shift();
        if (!m) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        if (m.type === 'lost') throw new FerryError('relay/worker-lost', `The worker serving this generation left (${m.reason}); send the request again.`);
        if (m.type === 'generation-failed') throw new FerryError(errorCodeOf(m.error.code), m.error.message);
        yield m.event;
        if (m.event.type === 'done') {
          finished = true;
          return;
        }
      }
    } finally {
      signal?.removeEventListener('abort', cancel);
      this.#calls.delete(call);
      // The consumer stopped early (its client went away): the worker stops too.
      if (!finished) cancel();
    }
  }

  /** A `generation` or `generation-failed` message from the worker. */
  deliver(m: Generation): void {
    this.#calls.get(m.call)?.(m);
  }

  /** The worker's socket closed: every generation in flight ends with an error. */
  lost(reason: string): void {
    for (const deliver of this.#calls.values()) deliver({ type: 'lost', reason });
    const channels = [...this.#channels.values()];
    this.#channels.clear();
    for (const ends of channels) ends.lost(reason);
  }
}

/** The engines that serve the API now: the relay's own, and its attached cloud workers'. */
export class ServingEngines implements EngineSource {
  readonly #workers = new Map<string, WorkerEngine>();
  /** Generations in flight per engine, so a request goes to the least busy. */
  readonly #active = new Map<ServingEngine, number>();
  #own: (() => Engine | undefined) | undefined;
  readonly #served = new WeakMap<Engine, ServingEngine>();

  /** The relay's own engine (the embedded worker's), once loaded. */
  setOwn(own: () => Engine | undefined): void {
    this.#own = own;
  }

  add(workerId: string, engine: WorkerEngine): void {
    this.#workers.set(workerId, engine);
  }

  remove(workerId: string, reason: string): void {
    this.#workers.get(workerId)?.lost(reason);
    this.#workers.delete(workerId);
  }

  all(): ServingEngine[] {
    const own = this.#own?.();
    let served = own && this.#served.get(own);
    if (own && !served) this.#served.set(own, (served = servingEngine(own)));
    return [...(served ? [served] : []), ...this.#workers.values()];
  }

  /**
   * The attached worker that verifies drafts for `model` (any model when undefined) with the fewest device sockets
   * on it; undefined when none does.
   */
  verifier(model: string | undefined): WorkerEngine | undefined {
    let best: WorkerEngine | undefined;
    for (const w of this.#workers.values()) {
      if (!w.verifies || (model !== undefined && w.info.model !== model)) continue;
      if (!best || w.verifyChannels < best.verifyChannels) best = w;
    }
    return best;
  }

  pick(model: string): ServingEngine {
    let best: ServingEngine | undefined;
    const load = (e: ServingEngine): number => this.#active.get(e) ?? 0;
    for (const e of this.all()) if (e.info.model === model && (!best || load(e) < load(best))) best = e;
    if (!best) {
      const models = [...new Set(this.all().map((e) => e.info.model))];
      throw new FerryError('api/unknown-model', models.length === 0
        ? 'No model is served here yet: start the relay with a model (ferry start --model …) or attach a worker (ferry worker --relay …).'
        : `The model "${model}" is not served here; this endpoint serves ${models.map((m) => `"${m}"`).join(', ')} (see GET /v1/models).`);
    }
    const engine = best;
    const active = this.#active;
    async function* counted(events: AsyncIterable<GenerateEvent>): AsyncGenerator<GenerateEvent> {
      active.set(engine, (active.get(engine) ?? 0) + 1);
      try {
        yield* events;
      } finally {
        const n = (active.get(engine) ?? 1) - 1;
        if (n === 0) active.delete(engine);
        else active.set(engine, n);
      }
    }
    return {
      info: engine.info,
      generate: (request) => counted(engine.generate(request)),
      generateWithTools: (request, use) => counted(engine.generateWithTools(request, use)),
    };
  }
}
