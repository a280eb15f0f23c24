/**
 * The runs of one session that its screen counts (a message's, content added, the run going on after a move or in
 * another tab): while any goes on, the session is running. A run stops counting only when `settle` calls `end`, in
 * the same update that shows the transcript read again, so a message that landed never shows as unsent in between.
 */
export class RunCount {
  #runs = $state(0);
  /** The run that goes on after a move, while it does: a message sent meanwhile waits for it. */
  #moved = $state.raw<Promise<void> | undefined>(undefined);

  constructor(private readonly settle: (end: () => void) => Promise<void>) {}

  get running(): boolean {
    return this.#runs > 0;
  }

  /** The only run going on is the one a move left. */
  get onlyMove(): boolean {
    return this.#moved !== undefined && this.#runs === 1;
  }

  /** Resolves once the run a move left has paused (at once when there is none). */
  async moveSettled(): Promise<void> {
    await this.#moved;
  }

  /** Counts `work` as a run until it has ended and the transcript has settled. */
  async count<T>(work: () => Promise<T>): Promise<T> {
    this.#runs++;
    let counted = true;
    const end = (): void => {
      if (!counted) return;
      counted = false;
      this.#runs--;
    };
    try {
      return await work();
    } finally {
      try {
        await this.settle(end);
      } finally {
        end();
      }
    }
  }

  /** Counts the run that goes on after a move until `paused` resolves. */
  async afterMove(paused: () => Promise<void>): Promise<void> {
    const followed = this.count(paused);
    this.#moved = followed;
    try {
      await followed;
    } finally {
      if (this.#moved === followed) this.#moved = undefined;
    }
  }
}
