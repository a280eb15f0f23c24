import { ContentStore, MemoryBackend } from '../../../src/core/store/index.ts';
import { storeConformance } from '../../support/store-conformance.ts';

storeConformance('memory', async () => {
  // Memory storage lives as long as its backend: "reopening" is a new Store over the same backend.
  const backend = new MemoryBackend();
  return { store: new ContentStore(backend), reopen: async () => new ContentStore(backend), teardown: async () => {} };
});
