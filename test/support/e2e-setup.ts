/** Every end-to-end test file: a failed test's report says what its pages and relays showed (failure-report.ts). */
import { afterEach } from 'vitest';
import { reportFailure } from './failure-report.ts';

afterEach((context) => reportFailure(context));
