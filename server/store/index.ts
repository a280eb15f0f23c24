export { FsBackend, FsStore, openFsStore, type VerifyReport } from './fs-store.ts';
