/**
 * What a failed end-to-end test saw, added to its errors: Vitest prints those in its closing summary, the part of a
 * long run's output a CI log keeps (a console line printed mid-run is lost with the rest). Whatever a test drives
 * (a rig's page and relay, a suite's devices) registers how to describe itself while it lives; the e2e setup file
 * (e2e-setup.ts) asks each of them after a failed test.
 */
import type { TestContext } from 'vitest';
import type { Page } from 'playwright-core';

type Describe = () => Promise<string>;

const describers = new Set<Describe>();

/** Registers `describe` for the reports of failed tests; returns its removal. */
export function describeOnFailure(describe: Describe): () => void {
  describers.add(describe);
  return () => void describers.delete(describe);
}

/** In an `afterEach`: when the test failed, what every registered describer says joins its errors. */
export async function reportFailure(context: Pick<TestContext, 'task'>): Promise<void> {
  const result = context.task.result;
  if (result?.state !== 'fail' || describers.size === 0) return;
  const parts = await Promise.all([...describers].map((d) => d().catch((err: unknown) => `(this report failed: ${err instanceof Error ? err.message : String(err)})`)));
  (result.errors ??= []).push({ name: 'What the test saw', message: parts.join('\n\n'), stack: '' } as NonNullable<typeof result.errors>[number]);
}

/** A page as a person would read it when the test failed: where the session runs, replies' headers, notices and errors, then its text. */
export async function describePage(page: Page, who: string): Promise<string> {
  if (page.isClosed()) return `${who}: closed`;
  const texts = (id: string) => page.getByTestId(id).allTextContents().catch(() => [] as string[]);
  const [runsOn, replies, toasts, errors, body] = await Promise.all([
    texts('runs-on'),
    page.locator('[data-testid="agent-message"] .who').allTextContents().catch(() => [] as string[]),
    texts('toast'),
    texts('error-toast'),
    page.locator('body').innerText({ timeout: 1000 }).catch(() => ''),
  ]);
  return `${who} (${page.url()}): runs on ${JSON.stringify(runsOn)}; replies ${JSON.stringify(replies)}; toasts ${JSON.stringify(toasts)}; errors ${JSON.stringify(errors)}\n${body.slice(0, 2500)}`;
}
