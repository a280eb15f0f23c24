/**
 * What a failed test saw, added to its errors: Vitest prints those in its closing summary, the part of a long run's
 * output a CI log keeps (a console line printed mid-run is lost with the rest).
 */
import type { TestContext } from 'vitest';

/** In an `afterEach`: when the test failed, `describe()` (what the pages showed, what servers logged) joins its errors. */
export async function reportFailure(context: Pick<TestContext, 'task'>, describe: () => Promise<string>): Promise<void> {
  const result = context.task.result;
  if (result?.state !== 'fail') return;
  const text = await describe().catch((err: unknown) => `(the report itself failed: ${err instanceof Error ? err.message : String(err)})`);
  (result.errors ??= []).push({ name: 'What the test saw', message: text, stack: '' } as NonNullable<typeof result.errors>[number]);
}
