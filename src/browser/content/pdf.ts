/**
 * The text of a PDF, extracted in the browser with PDF.js (pdfjs-dist, Mozilla's), which parses the file in its own
 * Web Worker: the page stays responsive, and nothing leaves the device. Loaded only when a PDF is first read. Text
 * comes page by page, lines where the PDF ends them; a PDF without a text layer (a scan) or one that needs a
 * password is refused with the reason.
 */
import type * as PdfJsModule from 'pdfjs-dist';
import { FerryError } from '../../core/errors.ts';
import { CONTENT_LIMITS } from './limits.ts';

type PdfJs = typeof PdfJsModule;

let loading: Promise<PdfJs> | undefined;

function pdfjs(): Promise<PdfJs> {
  loading ??= (async () => {
    const [lib, worker] = await Promise.all([import('pdfjs-dist'), import('pdfjs-dist/build/pdf.worker.min.mjs?url')]);
    lib.GlobalWorkerOptions.workerPort = new Worker(worker.default, { type: 'module', name: 'pdf.js' });
    return lib;
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}

export interface PdfText {
  title: string;
  text: string;
  pages: number;
  /** Pages past the limit, not read. */
  unread: number;
}

/** `onPage`: told after each page is read (a long PDF takes a while), with the pages to read in all. */
export async function pdfToText(bytes: Uint8Array, name: string, onPage?: (page: number, of: number) => void): Promise<PdfText> {
  const lib = await pdfjs();
  let doc: Awaited<ReturnType<PdfJs['getDocument']>['promise']>;
  try {
    // A copy: the worker takes the buffer it is given.
    doc = await lib.getDocument({ data: bytes.slice(), isEvalSupported: false, disableFontFace: true, stopAtErrors: false }).promise;
  } catch (err) {
    if (err instanceof Error && err.name === 'PasswordException') throw new FerryError('content/pdf-encrypted', `${name} needs a password to open; save a copy without one and add that.`);
    throw new FerryError('content/bad-pdf', `${name} is not a PDF this reader can open (${err instanceof Error ? err.message : String(err)}).`, { cause: err });
  }
  try {
    const read = Math.min(doc.numPages, CONTENT_LIMITS.pdfPages);
    const pages: string[] = [];
    for (let n = 1; n <= read; n++) {
      const content = await (await doc.getPage(n)).getTextContent();
      pages.push(content.items.map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : '')).join('').replace(/[ \t]+\n/g, '\n').trim());
      onPage?.(n, read);
    }
    const text = pages.filter((p) => p !== '').join('\n\n');
    if (text === '') throw new FerryError('content/pdf-no-text', `${name} has no text to read (a scanned PDF has only images of pages); add a PDF with a text layer, or paste its text.`);
    const info = (await doc.getMetadata().catch(() => undefined))?.info as { Title?: unknown } | undefined;
    const title = typeof info?.Title === 'string' ? info.Title.trim() : '';
    return { title, text, pages: doc.numPages, unread: doc.numPages - read };
  } finally {
    await doc.destroy();
  }
}
