/**
 * A device socket's speculative sessions on one engine (src/core/protocol/verify.ts), whatever carries the messages:
 * the relay's verify socket for its own engine (api/verify.ts), or a channel over an attached worker's link
 * (worker/remote.ts engineLinkVerifier). Each session holds its context in a slot of the engine; rounds of every session go
 * through the one VerifyBatcher given, so rounds that arrive together are verified in one pass. A session's own
 * failure is answered on that session and leaves the others alone.
 */
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import { engineVerifier, type DraftVerifier } from '../../src/core/llm/speculative.ts';
import { VERIFY_LIMITS, type DeviceToVerifier, type VerifierToDevice } from '../../src/core/protocol/index.ts';
import type { VerifyBatcher } from './verify-batch.ts';

interface Session {
  readonly verifier: DraftVerifier;
  readonly slot: string;
  round: number;
  busy: boolean;
}

export class VerifySessions {
  readonly #sessions = new Map<string, Session>();
  #closed = false;

  /** `slotPrefix` keeps these sessions' slots apart from every other socket's on the engine. */
  constructor(
    private readonly batcher: () => Promise<VerifyBatcher>,
    private readonly send: (m: VerifierToDevice) => void,
    private readonly slotPrefix: string,
  ) {}

  /** One parsed message; its failure is answered on its session. */
  receive(m: DeviceToVerifier): void {
    void this.#handle(m).catch((cause: unknown) => this.#fail(m.session, cause));
  }

  /** The socket closed: every session's slot is released. */
  close(): void {
    this.#closed = true;
    for (const name of [...this.#sessions.keys()]) this.#release(name);
  }

  #fail(session: string, cause: unknown): void {
    const error = isFerryError(cause) ? cause : new FerryError('llm/generate-failed', `Verification failed: ${(cause as Error).message}`);
    this.send({ type: 'error', session, error: { code: error.code, message: error.message } });
  }

  #release(name: string): void {
    const session = this.#sessions.get(name);
    this.#sessions.delete(name);
    if (session) void this.batcher().then((b) => b.engine.releaseSlot?.(session.slot)).catch(() => undefined);
  }

  async #handle(m: DeviceToVerifier): Promise<void> {
    if (m.type === 'close') return this.#release(m.session);
    if (m.type === 'open') {
      if (this.#sessions.has(m.session)) this.#release(m.session);
      if (this.#sessions.size >= VERIFY_LIMITS.maxSessions) {
        throw new FerryError('verify/too-many-sessions', `A socket may hold ${VERIFY_LIMITS.maxSessions} speculative sessions at once; close one first.`);
      }
      const { engine } = await this.batcher();
      if (m.model !== undefined && m.model !== engine.info.model) {
        throw new FerryError('api/unknown-model', `The drafts are for model ${m.model}; the engine here verifies with ${engine.info.model}.`);
      }
      if (m.prompt.length >= engine.info.contextSize) {
        throw new FerryError('llm/context-overflow', `The prompt has ${m.prompt.length} tokens; this engine's context holds ${engine.info.contextSize}.`);
      }
      if (this.#closed) return;
      const slot = `${this.slotPrefix}-${m.session}`;
      const verifier = engineVerifier({ info: engine.info, verify: (request) => this.batcher().then((b) => b.verify(request)) }, m.prompt, slot);
      this.#sessions.set(m.session, { verifier, slot, round: 0, busy: false });
      this.send({ type: 'opened', session: m.session, model: engine.info.model, tokenizerId: engine.info.tokenizerId });
      return;
    }
    const session = this.#sessions.get(m.session);
    if (!session) throw new FerryError('verify/unknown-session', `No speculative session "${m.session}" is open on this socket: open it first.`);
    if (session.busy || m.round !== session.round + 1) {
      throw new FerryError('verify/out-of-order', `Session "${m.session}" expects round ${session.round + 1}${session.busy ? ' once the one in flight is answered' : ''}, got ${m.round}.`);
    }
    session.busy = true;
    try {
      const verdict = await session.verifier.verify(m.draft);
      session.round = m.round;
      this.send({ type: 'verdict', session: m.session, round: m.round, ...verdict });
    } finally {
      session.busy = false;
    }
  }
}
