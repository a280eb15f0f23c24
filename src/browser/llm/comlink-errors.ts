/**
 * Errors are data across the worker boundary too: comlink's default 'throw' handler keeps only name, message
 * and stack, so a FerryError's `code` and details would be lost. This handler sends FerryErrors as their JSON
 * and leaves every other thrown value to comlink's default. Imported by both the worker and the page.
 */
import { transferHandlers, type TransferHandler } from 'comlink';
import { FerryError, type SerializedError } from '../../core/errors.ts';

interface Thrown {
  value: unknown;
}
type Wire = { ferry: SerializedError } | { other: unknown };

const fallback = transferHandlers.get('throw') as TransferHandler<Thrown, unknown>;
if (!(fallback as { ferry?: true }).ferry) {
  const handler: TransferHandler<Thrown, Wire> & { ferry: true } = {
    ferry: true,
    canHandle: (value): value is Thrown => fallback.canHandle(value),
    serialize(thrown) {
      if (thrown.value instanceof FerryError) return [{ ferry: thrown.value.toJSON() }, []];
      const [other, transfer] = fallback.serialize(thrown);
      return [{ other }, transfer];
    },
    deserialize(wire) {
      if ('ferry' in wire) throw FerryError.fromJSON(wire.ferry);
      return fallback.deserialize(wire.other);
    },
  };
  transferHandlers.set('throw', handler as TransferHandler<unknown, unknown>);
}
