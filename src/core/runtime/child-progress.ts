/**
 * What a job of forked children running on relay nodes reports as it goes (relay-children.ts), for the live turn
 * and for logs: which nodes take part and the plan, each child starting (fresh or resuming its last published
 * checkpoint), each checkpoint it publishes, its end, and children moved on when their node left. Plain data: it
 * crosses postMessage and the relay, so a page reading it from a cloud run validates it (ChildProgressSchema).
 */
import * as v from 'valibot';

const id = v.pipe(v.string(), v.maxLength(256));
const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const text = v.pipe(v.string(), v.maxLength(4096));

/** A node taking part in the job, as the relay listed it. */
const JobNodeSchema = v.pipe(v.object({
  /** The relay's worker id. */
  id,
  name: text,
  kind: v.picklist(['cloud', 'device']),
  /** Children it runs at once (its slots). */
  lanes: count,
  /** Measured decode tokens/s (its profile): the plan gives it work in proportion. */
  speed: v.pipe(v.number(), v.minValue(0)),
}), v.readonly());
export type JobNode = v.InferOutput<typeof JobNodeSchema>;

/** The `node` of children run in the parent's own runtime (a relay's node ids are 16 hex digits, never this). */
export const HERE = 'here';

export const ChildProgressSchema = v.variant('type', [
  /**
   * The nodes taking part and, before any child starts, the plan: each node's children (ids), in proportion to its
   * speed. Work stealing may move queued ones later: a node planned none takes a child only when it would finish it
   * before the child's node got to it, or when a node leaves.
   */
  v.object({ type: v.literal('nodes'), nodes: v.pipe(v.array(JobNodeSchema), v.readonly()), plan: v.record(id, v.pipe(v.array(id), v.readonly())) }),
  /**
   * No other node could take the children (none in the space, the relay out of reach): they run here, one by one,
   * each one's end a `child-done` on node HERE.
   */
  v.object({ type: v.literal('here'), children: count, reason: text }),
  /** `session`: the child's session id. `input`: "start" delivers its task; "resume" continues from its last published checkpoint. */
  v.object({ type: v.literal('child-start'), child: id, session: id, node: id, attempt: count, input: v.picklist(['start', 'resume']) }),
  /** The child's checkpoint reached its snapshot: from here on, losing its node loses nothing before it. */
  v.object({ type: v.literal('child-checkpoint'), child: id, node: id, checkpoint: id, version: count }),
  v.object({ type: v.literal('child-done'), child: id, node: id, ok: v.boolean(), ms: count }),
  /** The child itself failed (not its node): it counts as a failed child, the others go on. */
  v.object({ type: v.literal('child-failed'), child: id, node: id, error: v.object({ code: text, message: text }) }),
  /** Its node left: the child goes back to the pool and resumes on another node. */
  v.object({ type: v.literal('child-requeued'), child: id, node: id }),
  v.object({ type: v.literal('child-stolen'), child: id, node: id, from: id }),
  v.object({ type: v.literal('node-lost'), node: id, reason: text }),
]);
export type ChildProgress = v.InferOutput<typeof ChildProgressSchema>;
