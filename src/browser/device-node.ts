/**
 * "Offer this device as a node" (DESIGN §7): the page's side of the node worker (workers/node.worker.ts) and this
 * device's membership of a space. The space secret is created here or taken from a pairing link, kept in this
 * origin's storage (read back through a validator); the relay sees only the space's id and public key, and the
 * node worker's signature over its challenge (the node worker derives the signing key from the secret). While offering, the
 * node worker holds its own copy of the model and every component build the app ships, so it can continue any
 * session of this app's templates that the relay assigns it.
 */
import { proxy, releaseProxy, wrap, type Remote } from 'comlink';
import { FerryError } from '../core/errors.ts';
import { createSpaceSecret, pairingLink, parsePairingLink, spaceIdOf } from '../core/protocol/index.ts';
import type { ComponentFiles } from '../core/runtime/tool-worker.ts';
import type { NodeStatus, NodeWorkerApi } from '../../workers/node.worker.ts';
import type { ModelChoice } from './settings.ts';
import { TEMPLATE_IDS } from './templates.ts';
import { gpuOffloads } from './llm/device-probe.ts';
import { openModel } from './llm/model-source.ts';
import type { DownloadProgress } from './llm/model-download.ts';
import { templateComponents } from './template-components.ts';

export type { NodeStatus };

const SPACE_KEY = 'ferry.space';
/** The node's context: the model's own, at most this (the node shares the device with the app's own session). */
const MAX_CONTEXT = 4096;

/** This device's space secret, creating one on first use. */
export function spaceSecret(): string {
  const stored = localStorage.getItem(SPACE_KEY);
  if (stored && /^[A-Za-z0-9_-]{43}$/.test(stored)) return stored;
  const secret = createSpaceSecret();
  localStorage.setItem(SPACE_KEY, secret);
  return secret;
}

/** Joins the space of a pairing link (this device leaves the one it was in). */
export function joinSpace(link: string): string {
  const { secret } = parsePairingLink(link);
  localStorage.setItem(SPACE_KEY, secret);
  return secret;
}

/** The link (for a QR code) that pairs another device into this device's space on `relay`. */
export function spacePairingLink(relay: string): string {
  return pairingLink(relay, spaceSecret());
}

/** The id the relay knows this device's space by (to list its nodes, to place runs in it). */
export function currentSpaceId(): Promise<string> {
  return spaceIdOf(spaceSecret());
}

export interface DeviceNodeOptions {
  relay: string;
  model: ModelChoice;
  /** How other devices see this one in their lists. */
  name: string;
  /** The share of a CPU the node may use, in (0, 1]. */
  cpuShare?: number;
  /** The model may go on the GPU (llama.cpp's WebGPU backend) where this device's GPU can take it. */
  gpu?: boolean;
  onStatus(status: NodeStatus): void;
  onModelProgress?(progress: DownloadProgress): void;
}

export class DeviceNode {
  readonly #worker: Worker;
  readonly #remote: Remote<NodeWorkerApi>;

  private constructor() {
    this.#worker = new Worker(new URL('../../workers/node.worker.ts', import.meta.url), { type: 'module' });
    this.#remote = wrap<NodeWorkerApi>(this.#worker);
  }

  /** Starts offering this device; resolves once the relay has welcomed it, with its status. */
  static async start(opts: DeviceNodeOptions): Promise<{ node: DeviceNode; status: NodeStatus }> {
    if (!opts.relay) throw new FerryError('node/no-relay', 'Set the relay URL in Settings first: other devices reach this one through the relay.');
    const [file, sets, offload] = await Promise.all([
      openModel(opts.model, opts.onModelProgress),
      Promise.all(TEMPLATE_IDS.map((t) => templateComponents(t))),
      opts.gpu ? gpuOffloads() : undefined,
    ]);
    const components: Record<string, ComponentFiles> = Object.assign({}, ...sets.map((s) => s.files));
    const node = new DeviceNode();
    const died = new Promise<never>((_, reject) =>
      node.#worker.addEventListener('error', (e) => reject(new FerryError('node/worker-died', `The node worker failed: ${e.message || 'it could not load'}. Reload the page and try again.`)), { once: true }),
    );
    const result = await Promise.race([
      node.#remote.start(
        {
          relayUrl: opts.relay,
          spaceSecret: spaceSecret(),
          name: opts.name,
          components,
          ...(opts.cpuShare !== undefined ? { cpuShare: opts.cpuShare } : {}),
          engine: { model: file, gpu: offload?.ok === true, ...(opts.model.source === 'relay' ? { modelId: opts.model.id, contextSize: Math.min(opts.model.contextSize, MAX_CONTEXT) } : {}) },
        },
        proxy(opts.onStatus),
      ),
      died,
    ]).catch(async (err: unknown) => {
      node.#worker.terminate();
      throw err;
    });
    if ('error' in result) {
      node.#worker.terminate();
      throw FerryError.fromJSON(result.error);
    }
    return { node, status: result.ok };
  }

  /** Caps the node at `fraction` of a CPU from its next token on. */
  async setCpuShare(fraction: number): Promise<void> {
    await this.#remote.setCpuShare(fraction);
  }

  /** Stops offering: runs here are checkpointed and published first, so the relay hands them on intact. */
  async stop(): Promise<void> {
    await this.#remote.stop().catch(() => undefined);
    this.#remote[releaseProxy]();
    this.#worker.terminate();
  }
}
