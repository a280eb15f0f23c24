/**
 * What a job of forked children running on relay nodes reports as it goes (relay-children.ts), for the UI's
 * "where it runs" view and for logs: which nodes take part, each child starting (fresh or resuming its last
 * published checkpoint), each checkpoint it publishes, its end, and children moved on when their node left.
 * Plain data: it crosses postMessage and the relay.
 */

/** A node taking part in the job, as the relay listed it. */
export interface JobNode {
  /** The relay's worker id. */
  readonly id: string;
  readonly name: string;
  readonly kind: 'cloud' | 'device';
  /** Children it runs at once (its slots). */
  readonly lanes: number;
  /** Measured decode tokens/s (its profile): the plan gives it work in proportion. */
  readonly speed: number;
}

export type ChildProgress =
  /**
   * The nodes taking part and, before any child starts, the plan: each node's children (ids), in proportion to its
   * speed. Work stealing may move queued ones later: a node planned none takes a child only when it would finish it
   * before the child's node got to it, or when a node leaves.
   */
  | { readonly type: 'nodes'; readonly nodes: readonly JobNode[]; readonly plan: Readonly<Record<string, readonly string[]>> }
  /** `session`: the child's session id. `input`: "start" delivers its task; "resume" continues from its last published checkpoint. */
  | { readonly type: 'child-start'; readonly child: string; readonly session: string; readonly node: string; readonly attempt: number; readonly input: 'start' | 'resume' }
  /** The child's checkpoint reached its snapshot: from here on, losing its node loses nothing before it. */
  | { readonly type: 'child-checkpoint'; readonly child: string; readonly node: string; readonly checkpoint: string; readonly version: number }
  | { readonly type: 'child-done'; readonly child: string; readonly node: string; readonly ok: boolean; readonly ms: number }
  /** The child itself failed (not its node): it counts as a failed child, the others go on. */
  | { readonly type: 'child-failed'; readonly child: string; readonly node: string; readonly error: { readonly code: string; readonly message: string } }
  /** Its node left: the child goes back to the pool and resumes on another node. */
  | { readonly type: 'child-requeued'; readonly child: string; readonly node: string }
  | { readonly type: 'child-stolen'; readonly child: string; readonly node: string; readonly from: string }
  | { readonly type: 'node-lost'; readonly node: string; readonly reason: string };
