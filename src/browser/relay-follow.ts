/**
 * Following a session that runs on a relay's node from this page: the runner's options (events into this device's
 * store, where it is kept in this device's records so a reload follows it again), that runner made again after a
 * reload from what the records kept, the session brought back when its node leaves, and let go when deleted here.
 */
import { RelayRunner, restoreRelayPlacement, serializeRelayPlacement, type RelayRunnerOptions, type RunnerEvent, type SessionRunner } from '../core/host/index.ts';
import { RelayHttp } from '../core/protocol/index.ts';
import type { LocalData } from './local-data.ts';
import { CLOUD } from './placement.ts';

export interface FollowHooks {
  relay(): string;
  replyTokens(): number;
  heard(event: RunnerEvent): void;
  /** The relay moved the run on to another node (its name, when it has one). */
  reassigned(name: string | undefined): void;
  /** The node the session was pinned to left, and the relay did not move the run on. */
  nodeLeft(): void;
}

export function followOptions(sessionId: string, data: LocalData, hooks: FollowHooks): RelayRunnerOptions {
  return {
    sessionId,
    store: data.store,
    relay: new RelayHttp({ baseUrl: hooks.relay() }),
    onEvent: hooks.heard,
    persist: async (p) => void (await data.records.savePlacement(sessionId, serializeRelayPlacement(p))),
    onReassigned: hooks.reassigned,
    onNodeLeft: hooks.nodeLeft,
    replyTokens: hooks.replyTokens,
  };
}

/** After a reload: the runner following the session where this device left it, or undefined when it left it nowhere. */
export async function followAgain(sessionId: string, data: LocalData, options: RelayRunnerOptions): Promise<{ runner: RelayRunner; name: string } | undefined> {
  const text = await data.records.placement(sessionId);
  if (text === undefined) return undefined;
  let saved;
  try {
    saved = restoreRelayPlacement(text);
  } catch (err) {
    // A record that cannot be read cannot be followed: the session is this device's again, from its own store.
    await data.records.savePlacement(sessionId, null);
    throw err;
  }
  return { runner: await RelayRunner.restore(saved, options), name: saved.name ?? CLOUD };
}

/**
 * The node `who` a session was pinned to left, and the relay did not move the run on: the session comes back here
 * from its last published checkpoint and says so. A message that no checkpoint holds is offered again (PendingInput).
 */
export async function comeBack(who: string, bringBack: () => Promise<void>, heard: (event: RunnerEvent) => void): Promise<void> {
  try {
    await bringBack();
    heard({ type: 'notice', message: `${who} running this session left, so it came back to this device from its last checkpoint.` });
  } catch (err) {
    heard({ type: 'error', code: 'relay/bring-back-failed', message: `${who} running this session left, and it could not come back by itself; it is safe in its last published checkpoint. Bring it back by hand (${err instanceof Error ? err.message : String(err)}).` });
  }
}

/**
 * The session is deleted here: a run followed on the relay is handed back there (it stays, idle, for an undo to
 * follow again); one here stops at a checkpoint. Either way nothing of it comes back.
 */
export async function letGo(runner: SessionRunner): Promise<void> {
  if (runner instanceof RelayRunner) return runner.letGo();
  try {
    await runner.stop();
  } finally {
    await runner.close();
  }
}
