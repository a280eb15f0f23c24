/** The relay wire protocol, shared by the browser, the cloud worker and the relay itself. */
export * from './wire.ts';
export { parseWire } from './validate.ts';
export { checkSealed, checkSealedObject } from './sealed-check.ts';
export { FRAMES_CONTENT_TYPE, decodeFrames, encodeFrames, framedSize, type Framed } from './frames.ts';
export { MANIFEST_VERSION, decodeManifest, encodeManifest, makeManifest, manifestRefs, type SnapshotManifest } from './manifest.ts';
export { parseShareLink, shareLink, type ShareLink } from './link.ts';
export { decodeBitmap, encodeBitmap, fromBase64Url, toBase64Url } from './base64url.ts';
export { RelayHttp, type RelayHttpOptions, type TransferStats } from './http-client.ts';
export { forgetRelayBuilds } from './relay-build-list.ts';
export { fetchSnapshot, publishSession, type FetchResult, type PublishOptions, type PublishResult, type PublishedSnapshot } from './snapshot-sync.ts';
export {
  ATTEMPT_HEADER,
  RelayToWorkerSchema,
  SPACE_HEADER,
  SPACE_LIMITS,
  WORKER_CLOSE,
  WORKER_PROTOCOL_VERSION,
  WorkerListSchema,
  WorkerProfileSchema,
  WorkerToRelaySchema,
  WorkerTokenSchema,
  WireGenerateRequestSchema,
  attemptHeader,
  mayRunOn,
  parseAttemptHeader,
  workerPaths,
  type RelayToWorker,
  type WorkerList,
  type WorkerProfile,
  type WorkerToRelay,
  type WireGenerateRequest,
} from './workers.ts';
export {
  SPACE_SECRET_BYTES,
  SpaceIdSchema,
  SpaceMembershipSchema,
  createSpaceSecret,
  pairingLink,
  parsePairingLink,
  spaceCredentials,
  spaceIdOf,
  verifySpaceMembership,
  type SpaceCredentials,
  type SpaceMembership,
} from './spaces.ts';
export { SealedKeySchema, WorkerPublicKeySchema, createWorkerKeys, sealKeyTo, type WorkerKeys } from './worker-keys.ts';
export {
  RunEventReader,
  capabilityOf,
  eventStreamProtocols,
  openRunInput,
  runReadToken,
  runReadVerifier,
  sealRunEvent,
  sealRunInput,
  sealedKeyFor,
  startSealedRun,
  type OpenRunMessage,
  type RunEvent,
  type SealedRunStart,
} from './runs.ts';
export { RelayInfoSchema, infoPath, type RelayInfo } from './relay-info.ts';
export { FINAL_URL_HEADER, URL_FETCH_LIMITS, URL_FETCH_TYPES, UrlFetchRequestSchema, parseContentType, urlFetchPaths, type FetchedUrl, type UrlFetchRequest } from './url-fetch.ts';
export { COMPONENT_LIMITS, ComponentIdSchema, ComponentListSchema, componentPaths, type ComponentList } from './components.ts';
export { catalogPath, HostedModelListSchema, HostedModelSchema, modelPaths, type HostedModel, type HostedModelList } from './models.ts';
export {
  DeviceToVerifierSchema,
  RemoteVerifier,
  VERIFY_LIMITS,
  VERIFY_TIMEOUT,
  VerifierToDeviceSchema,
  VerifyConnection,
  verifyLimitMs,
  verifyPath,
  type DeviceToVerifier,
  type VerifierToDevice,
  type VerifySocket,
  type VerifyTimeout,
} from './verify.ts';
