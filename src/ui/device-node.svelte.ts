/**
 * "Offer this device as a node" for the UI: the running DeviceNode (kept while the user moves between screens),
 * its live status, and this device's space — its pairing link and QR code, joining another device's space by its
 * link, and the space's nodes as the relay lists them. The node code and the QR encoder load only when used.
 */
import { FerryError } from '../core/errors.ts';
import type { WorkerList } from '../core/protocol/index.ts';
import type { DeviceNode, NodeStatus } from '../browser/device-node.ts';
import type { ModelChoice } from '../browser/settings.ts';
import { describeError, type UiError } from './errors.ts';

/** A pairing link in the address (the fragment never reaches the relay): `#space=<secret>`. */
const PAIRING = /^#space=([A-Za-z0-9_-]{43})$/;
const CPU_SHARE_KEY = 'ferry.cpuSharePercent';

/** The stored cap, 5–100 % (100 when absent or damaged). */
function storedPercent(): number {
  const n = Number(globalThis.localStorage?.getItem(CPU_SHARE_KEY));
  return Number.isInteger(n) && n >= 5 && n <= 100 ? n : 100;
}

class NodeOffer {
  status = $state.raw<NodeStatus | null>(null);
  error = $state.raw<UiError | null>(null);
  busy = $state(false);
  /** The space's other devices, as last listed. */
  peers = $state.raw<WorkerList['workers']>([]);
  /** Set when this page was opened by a pairing link and joined that space. */
  joined = $state(false);
  /** "Ferry may use at most this % of this device's CPU" (the node's and this device's own sessions' engines). */
  cpuPercent = $state(storedPercent());
  /** State, so the button ("Offer" / "Stop offering", aria-pressed) follows it. */
  #node = $state.raw<DeviceNode | undefined>(undefined);
  /** Others that apply the cap (the agent host, once loaded). */
  readonly #capped = new Set<(fraction: number) => Promise<void>>();

  /** Applies the cap to `apply` now and on every change; returns the call that stops it. */
  obeyCpuShare(apply: (fraction: number) => Promise<void>): () => void {
    this.#capped.add(apply);
    void apply(this.cpuPercent / 100).catch((err: unknown) => (this.error = describeError(err)));
    return () => void this.#capped.delete(apply);
  }

  async setCpuPercent(percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 5 || percent > 100) {
      this.error = { code: 'app/bad-setting', message: `The CPU share is a whole percentage from 5 to 100; got ${percent}.` };
      return;
    }
    this.cpuPercent = percent;
    localStorage.setItem(CPU_SHARE_KEY, String(percent));
    try {
      await Promise.all([this.#node?.setCpuShare(percent / 100), ...[...this.#capped].map((apply) => apply(percent / 100))]);
    } catch (err) {
      this.error = describeError(err);
    }
  }

  get offering(): boolean {
    return this.#node !== undefined;
  }

  /** `gpu`: the model may go on this device's GPU (Settings' GGUF models on the GPU), where the GPU can take it. */
  async start(relay: string, model: ModelChoice | null, gpu: boolean): Promise<void> {
    if (this.#node || this.busy) return;
    this.busy = true;
    this.error = null;
    try {
      if (!model) throw new FerryError('app/no-model', 'Choose a model on the Models screen first: a node runs sessions with this device\'s model.');
      const { DeviceNode } = await import('../browser/device-node.ts');
      const { node, status } = await DeviceNode.start({ relay, model, gpu, name: deviceName(), cpuShare: this.cpuPercent / 100, onStatus: (s) => (this.status = s) });
      this.#node = node;
      this.status = status;
    } catch (err) {
      this.error = describeError(err);
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<void> {
    const node = this.#node;
    if (!node) return;
    this.busy = true;
    try {
      await node.stop();
    } finally {
      this.#node = undefined;
      this.status = null;
      this.busy = false;
    }
  }

  /** This device's space (its other devices are placement candidates) and its own node, when it offers itself. */
  async placementContext(): Promise<{ space: string; self?: string }> {
    const { currentSpaceId } = await import('../browser/device-node.ts');
    const self = this.status?.id;
    return { space: await currentSpaceId(), ...(self ? { self } : {}) };
  }

  /** This device's pairing link and its QR code (SVG). */
  async pairing(relay: string): Promise<{ link: string; qrSvg: string }> {
    const [{ spacePairingLink }, { shareQrSvg }, { linkBase }] = await Promise.all([import('../browser/device-node.ts'), import('../browser/relay-client.ts'), import('../browser/relay-info.ts')]);
    // The address the other device reaches the relay at, which may not be this page's.
    const link = spacePairingLink(await linkBase(relay));
    return { link, qrSvg: await shareQrSvg(link) };
  }

  /** Joins the space of a pairing link a person pasted; a node already offering restarts in the new space. */
  async join(link: string, relay: string, model: ModelChoice | null, gpu: boolean): Promise<boolean> {
    this.error = null;
    try {
      const { joinSpace } = await import('../browser/device-node.ts');
      joinSpace(link.trim());
    } catch (err) {
      this.error = describeError(err);
      return false;
    }
    if (this.#node) {
      await this.stop();
      await this.start(relay, model, gpu);
    }
    return true;
  }

  /**
   * Takes a pairing link (`/#space=<secret>`) the page is opened with or navigated to: joins its space, replaces the
   * address so the secret stays neither in the address bar nor in the history, and calls `onJoined`.
   */
  listenForPairing(onJoined: () => void): void {
    const take = async (): Promise<void> => {
      if (!PAIRING.test(location.hash)) return;
      const { joinSpace } = await import('../browser/device-node.ts');
      joinSpace(location.href);
      history.replaceState(null, '', '#/settings');
      this.joined = true;
      onJoined();
    };
    addEventListener('hashchange', () => void take());
    void take();
  }

  /**
   * The space's devices that offer themselves now (the relay lists only this space's). `quiet`: a periodic refresh,
   * which keeps the last list on failure instead of showing an error each time.
   */
  async refreshPeers(relay: string, { quiet = false } = {}): Promise<void> {
    try {
      const [{ currentSpaceId }, { SPACE_HEADER, WorkerListSchema, parseWire, workerPaths }] = await Promise.all([import('../browser/device-node.ts'), import('../core/protocol/index.ts')]);
      const res = await fetch(`${relay}${workerPaths.list}`, { headers: { [SPACE_HEADER]: await currentSpaceId() }, cache: 'no-store', signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new FerryError('relay/unreachable', `The relay answered ${res.status} for its nodes.`);
      this.peers = parseWire(WorkerListSchema, await res.json(), "The relay's node list", 'relay/bad-response').workers.filter((w) => w.kind === 'device');
    } catch (err) {
      if (!quiet) this.error = describeError(err);
    }
  }
}

/** How other devices see this one: its platform and a short random suffix (no fingerprinting detail). */
function deviceName(): string {
  const platform = (navigator as Navigator & { userAgentData?: { platform?: string } }).userAgentData?.platform || (/Android|iPhone|iPad|Mac|Windows|Linux/.exec(navigator.userAgent)?.[0] ?? 'device');
  const phone = matchMedia('(pointer: coarse)').matches ? 'phone' : 'browser';
  return `${platform} ${phone} ${crypto.getRandomValues(new Uint16Array(1))[0]!.toString(16)}`;
}

export const nodeOffer = new NodeOffer();
