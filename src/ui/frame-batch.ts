/** Text that arrives faster than frames (streamed tokens), handed on at most once per frame. */
export class FrameBatch {
  #text = '';
  #frame = 0;

  constructor(private readonly apply: (text: string) => void) {}

  add(text: string): void {
    this.#text += text;
    this.#frame ||= requestAnimationFrame(() => this.flush());
  }

  /** Hands on what is waiting now, without waiting for the frame. */
  flush(): void {
    this.cancel();
    if (!this.#text) return;
    const text = this.#text;
    this.#text = '';
    this.apply(text);
  }

  cancel(): void {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
  }
}
