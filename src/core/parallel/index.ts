/** Context parallelism (DESIGN.md §7): split a job into sub-contexts, schedule them over nodes with work stealing, merge in order. */
export { planProportional, splitJob, validateJob, type ContextItem, type ParallelNode, type ParallelTask } from './split.ts';
export { runParallel, startParallel, type ParallelEvent, type ParallelJob, type ParallelOptions, type ParallelOutcome } from './scheduler.ts';
export { VirtualClock } from './virtual-clock.ts';
export { relayChildren, type RelayChildrenOptions } from './relay-children.ts';
export { childrenOneByOne, hereChildren } from './children-here.ts';
export { chooseNodes, listSpaceWorkers, type Lane, type NodeChoice } from './relay-nodes.ts';
export { defaultOpenSocket, followRun, type FollowOptions, type OpenSocket, type StreamSocket } from './run-follow.ts';

