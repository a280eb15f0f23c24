/** Looking for plaintext in a folder: every byte of every file under it (SQLite files and their WAL included). */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

/** Each (needle, file) where the file's bytes contain the needle's UTF-8 bytes. */
export async function plaintextHits(dir: string, needles: readonly string[]): Promise<{ needle: string; file: string }[]> {
  const hits: { needle: string; file: string }[] = [];
  for (const file of await filesUnder(dir)) {
    const bytes = await readFile(file);
    for (const needle of needles) if (bytes.includes(Buffer.from(needle, 'utf8'))) hits.push({ needle, file: path.relative(dir, file) });
  }
  return hits;
}
