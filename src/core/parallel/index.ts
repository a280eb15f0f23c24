/** Context parallelism (DESIGN.md §7): split a job into sub-contexts, schedule them over nodes with work stealing, merge in order. */
export { planProportional, splitJob, validateJob, type ContextItem, type ParallelNode, type ParallelTask } from './split.ts';
export { runParallel, startParallel, type ParallelEvent, type ParallelJob, type ParallelOptions, type ParallelOutcome } from './scheduler.ts';
export { VirtualClock } from './virtual-clock.ts';
