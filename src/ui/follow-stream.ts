/**
 * Keeps a streaming reply in view while the reader is at the bottom of the page, and leaves them where they are once
 * they scroll away. Whether to follow is decided by the reader's own scrolls, not re-measured before each token: a
 * reader who scrolls up to a control (say, a Move button) near the bottom stays there, and the control does not slide
 * away under their finger as the next token lands; content that grows without a scroll (a tool line) changes nothing.
 */

/** What the follower needs of the page (the window, in the app). */
export interface ScrollView {
  readonly scrollY: number;
  readonly innerHeight: number;
  /** The document's full height. */
  readonly scrollHeight: number;
  scrollTo(top: number): void;
}

/** How close to the bottom a reader's scroll must end to follow again (rounding of fractional pixels). */
const AT_BOTTOM_PX = 4;
/** How close to the bottom the page must be when the stream starts for it to be followed (the composer just used). */
const START_PX = 48;

export class StreamFollower {
  #following: boolean;
  /** Where this follower last scrolled to: a scroll event that ends there is its own. */
  #ours = Number.NaN;

  constructor(private readonly view: ScrollView) {
    this.#following = bottomGap(view) <= START_PX;
  }

  get following(): boolean {
    return this.#following;
  }

  /** The page scrolled (the reader, or this follower): follow from now on only if it ended at the bottom. */
  scrolled(): void {
    this.#following = Math.abs(this.view.scrollY - this.#ours) < 1 || bottomGap(this.view) <= AT_BOTTOM_PX;
  }

  /** The stream grew: scroll to the bottom if following. */
  grew(): void {
    if (!this.#following) return;
    const top = Math.max(0, this.view.scrollHeight - this.view.innerHeight);
    this.#ours = top;
    this.view.scrollTo(top);
  }
}

const bottomGap = (v: ScrollView): number => v.scrollHeight - (v.scrollY + v.innerHeight);
