/** The workload driver (eval/workload-driver.ts) in Node, on the components this checkout built (components/dist). */
import path from 'node:path';
import type { Engine } from '../src/core/llm/engine.ts';
import { loadBuiltComponent } from '../server/runtime/node-components.ts';
import { driveWorkload, type WorkloadOptions, type WorkloadResult } from './workload-driver.ts';
import type { Workload } from './workloads.ts';

export type { BadCall, WorkloadOptions, WorkloadResult } from './workload-driver.ts';

const dir = path.join(import.meta.dirname, '..', 'components', 'dist');

export function runWorkload(workload: Workload, engine: Engine, options: WorkloadOptions): Promise<WorkloadResult> {
  return driveWorkload(workload, engine, options, (name) => loadBuiltComponent(path.join(dir, name)));
}
