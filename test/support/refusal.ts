import { FerryError } from '../../src/core/errors.ts';

/** The FerryError `work` fails with; anything else it throws, or succeeding, fails the test. */
export async function refusal(work: () => Promise<unknown>, accepted = 'expected a FerryError'): Promise<FerryError> {
  try {
    await work();
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  throw new Error(accepted);
}
