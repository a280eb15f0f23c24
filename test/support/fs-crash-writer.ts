/**
 * Child process for the crash-consistency test: writes to a filesystem store as fast as it can (appends with
 * changing component images, forks, rollbacks, branch switches) until it is SIGKILLed. Prints "ready" once the
 * session exists. Usage: node --import tsx fs-crash-writer.ts <dir> <seed>
 */
import { openFsStore } from '../../server/store/index.ts';
import { PAGE_SIZE, Session } from '../../src/core/session/index.ts';
import { chatStep, patternImage, testLlm } from './session-fixtures.ts';

const [dir, seedArg] = process.argv.slice(2);
if (!dir) throw new Error('usage: fs-crash-writer.ts <dir> <seed>');
let seed = Number(seedArg ?? 1) | 1;
const rand = (n: number): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};

const store = await openFsStore(dir);
const existing = (await store.listRefs('sessions/')).find((r) => r.name.endsWith('/head'));
const session = existing
  ? await Session.open(store, existing.name.split('/')[1]!)
  : await Session.create(store, { llm: testLlm, components: { vm: patternImage(4 * PAGE_SIZE, seed) } });
let image = existing ? await session.component(await session.head(), 'vm') : patternImage(4 * PAGE_SIZE, seed);
console.log('ready');
for (let n = 0; ; n++) {
  const op = rand(10);
  if (op < 7) {
    image = image.slice();
    image.set(patternImage(512, n + seed), rand(image.length - 512));
    await session.append(chatStep(n, { vm: image }));
  } else if (op === 7) {
    const history = await session.history();
    await session.fork(history[rand(history.length)]!.id, `b${n}-${seed & 0xffff}`);
  } else if (op === 8) {
    const history = await session.history();
    await session.rollback(history[rand(Math.min(3, history.length))]!.id);
  } else {
    const branches = await session.branches();
    await session.switchBranch(branches[rand(branches.length)]!.name);
    image = await session.component(await session.head(), 'vm');
  }
}
