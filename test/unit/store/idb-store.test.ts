import 'fake-indexeddb/auto';
import { idbStoreSuite } from '../../support/idb-cases.ts';

idbStoreSuite('IndexedDB (fake-indexeddb)');
