/**
 * Sources a person gives a survey or a podcast — files (text, Markdown, HTML, PDF), pasted text, or web pages the
 * relay fetches — read into titled texts for the docs tool. Each is held to explicit limits (the file's size before
 * it is read; the text kept, with a note where it was cut), and refused with the reason when it cannot be read.
 */
import { FerryError } from '../../core/errors.ts';
import type { RelayHttp } from '../../core/protocol/index.ts';
import { htmlToText } from './html.ts';
import { CONTENT_LIMITS } from './limits.ts';
import { pdfToText } from './pdf.ts';
import { decodeText } from './text.ts';
import { bytesOf } from './workspace-files.ts';

export interface SourceDraft {
  title: string;
  text: string;
  /** Where it came from: the web address, for a fetched page. */
  url?: string;
  /** For people: "report.pdf · 12 pages", "pasted", the address. */
  origin: string;
  /** Characters of the text that were over the limit and left out. */
  clipped: number;
}

type Kind = 'pdf' | 'html' | 'text';

function kindOf(mediaType: string, name: string): Kind {
  if (mediaType === 'application/pdf' || /\.pdf$/i.test(name)) return 'pdf';
  if (mediaType === 'text/html' || mediaType === 'application/xhtml+xml' || /\.x?html?$/i.test(name)) return 'html';
  return 'text';
}

/** Told how far a long read has gone: "page 3 of 40". */
export type ReadProgress = (done: string) => void;

/** A file from this device. */
export async function readSourceFile(file: File, progress?: ReadProgress): Promise<SourceDraft> {
  const bytes = await bytesOf(file, CONTENT_LIMITS.sourceFileBytes, file.name);
  return fromBytes(bytes, { mediaType: file.type.toLowerCase(), charset: undefined, name: file.name, origin: file.name }, progress);
}

/** A web page or file, fetched by the relay (which refuses private addresses, other types and large bodies). */
export async function fetchSource(relay: RelayHttp, address: string): Promise<SourceDraft> {
  const trimmed = address.trim();
  if (!/^https?:\/\//i.test(trimmed)) throw new FerryError('content/bad-url', `"${trimmed.slice(0, 200)}" is not a web address: give one that starts with https:// or http://.`);
  const fetched = await relay.fetchUrl(trimmed);
  const name = decodeURIComponent(new URL(fetched.url).pathname.split('/').filter(Boolean).at(-1) ?? '') || new URL(fetched.url).hostname;
  return { ...(await fromBytes(fetched.bytes, { mediaType: fetched.mediaType, charset: fetched.charset, name, origin: fetched.url })), url: fetched.url };
}

/** Text the person pasted, under the title they gave (or its first line). */
export function pastedSource(title: string, text: string): SourceDraft {
  const body = text.trim();
  if (body === '') throw new FerryError('content/empty-source', 'The pasted text is empty; paste the text of the source, then add it.');
  return draft(title.trim() || firstLine(body), body, 'pasted');
}

async function fromBytes(bytes: Uint8Array, from: { mediaType: string; charset: string | undefined; name: string; origin: string }, progress?: ReadProgress): Promise<SourceDraft> {
  const kind = kindOf(from.mediaType, from.name);
  const bare = from.name.replace(/\.[a-z0-9]+$/i, '');
  if (kind === 'pdf') {
    const pdf = await pdfToText(bytes, from.name, progress && ((page, of) => progress(`page ${page} of ${of}`)));
    const note = pdf.unread > 0 ? `\n\n[The last ${pdf.unread} of ${pdf.pages} pages were not read.]` : '';
    return draft(pdf.title || bare, pdf.text + note, `${from.origin} · ${pdf.pages} page${pdf.pages === 1 ? '' : 's'}`);
  }
  const decoded = decodeText(bytes, from.charset);
  if (!decoded.ok) throw new FerryError('content/not-text', `${from.name} is ${decoded.reason}: a source must be text, Markdown, HTML or PDF.`);
  if (kind === 'html') {
    const page = htmlToText(decoded.text);
    return draft(page.title || bare, page.text, from.origin);
  }
  const heading = /^#\s+(.+)$/m.exec(decoded.text)?.[1]?.trim();
  return draft(heading || bare, decoded.text, from.origin);
}

function draft(title: string, text: string, origin: string): SourceDraft {
  const body = text.trim();
  if (body === '') throw new FerryError('content/empty-source', `${origin} has no text to read.`);
  const clipped = Math.max(0, body.length - CONTENT_LIMITS.sourceChars);
  const kept = clipped > 0 ? `${body.slice(0, CONTENT_LIMITS.sourceChars)}\n\n[${clipped} more characters were not added.]` : body;
  return { title: (title || 'Untitled source').slice(0, CONTENT_LIMITS.sourceTitleChars), text: kept, origin, clipped };
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.replace(/^#+\s*/, '').trim().slice(0, 80);
}
