/**
 * The readers for a person's own content, in Chromium (they need the DOM's parser and PDF.js's worker): a PDF made
 * here read back line by line, HTML reduced to its readable text, Markdown and text files titled, and files that
 * are not text, not a PDF or have no text refused with their own codes; a dropped folder walked with its paths.
 */
import { describe, expect, it } from 'vitest';
import { droppedFiles } from '../../src/browser/content/drop.ts';
import { htmlToText } from '../../src/browser/content/html.ts';
import { pdfToText } from '../../src/browser/content/pdf.ts';
import { readSourceFile } from '../../src/browser/content/sources.ts';
import { readWorkspaceFiles } from '../../src/browser/content/workspace-files.ts';
import { makePdf } from '../support/pdf.ts';
import { refusal } from '../support/refusal.ts';

const codeOf = async (p: Promise<unknown>): Promise<string> => (await refusal(() => p)).code;

describe('PDF sources', () => {
  it('reads every page of a PDF, line by line, with its title', async () => {
    const pdf = makePdf([['Harbour cranes lift containers.', 'Tides set the schedule (twice a day).'], ['Page two: pilots board ships offshore.']], 'Working harbours');
    const read = await pdfToText(pdf, 'harbours.pdf');
    expect(read.title).toBe('Working harbours');
    expect(read.pages).toBe(2);
    expect(read.unread).toBe(0);
    expect(read.text).toBe('Harbour cranes lift containers.\nTides set the schedule (twice a day).\n\nPage two: pilots board ships offshore.');
  });

  it('a PDF file becomes a source titled by its metadata, or by its name without one', async () => {
    const titled = await readSourceFile(new File([makePdf([['Ferries cross the strait.']], 'Strait crossings')], 'crossings.pdf', { type: 'application/pdf' }));
    expect(titled).toMatchObject({ title: 'Strait crossings', text: 'Ferries cross the strait.', origin: 'crossings.pdf · 1 page', clipped: 0 });
    const untitled = await readSourceFile(new File([makePdf([['Buoys mark the channel.']])], 'buoys.pdf'));
    expect(untitled.title).toBe('buoys');
  });

  it('refuses a file that only claims to be a PDF, and a PDF with no text', async () => {
    expect(await codeOf(readSourceFile(new File(['%PDF-1.4 this is not really a PDF'], 'fake.pdf')))).toBe('content/bad-pdf');
    expect(await codeOf(pdfToText(makePdf([[]]), 'scan.pdf'))).toBe('content/pdf-no-text');
  });
});

describe('HTML, Markdown and text sources', () => {
  it('keeps the readable text of a page: headings, paragraphs and list items, without scripts, styles or navigation chrome outside <main>', () => {
    const page = htmlToText(`<!doctype html><html><head><title> Tide tables </title><style>p{color:red}</style></head>
      <body><nav>Home | About</nav><main><h1>Tides</h1><p>High water comes   twice
      a day.</p><script>alert("no")</script><ul><li>Spring tides</li><li>Neap tides</li></ul><pre>  kept   as is</pre></main></body></html>`);
    expect(page.title).toBe('Tide tables');
    expect(page.text).toBe('# Tides\n\nHigh water comes twice a day.\n\n- Spring tides\n- Neap tides\n\n  kept   as is');
  });

  it('titles Markdown by its first heading and text by its name; refuses a binary file', async () => {
    const md = await readSourceFile(new File(['Intro line\n\n# Locks and weirs\n\nLocks raise boats.'], 'locks.md', { type: 'text/markdown' }));
    expect(md.title).toBe('Locks and weirs');
    const txt = await readSourceFile(new File(['Plain notes about moorings.'], 'moorings.txt'));
    expect(txt).toMatchObject({ title: 'moorings', text: 'Plain notes about moorings.' });
    const html = await readSourceFile(new File(['<title>Quay</title><p>Quays are walls.</p>'], 'quay.html'));
    expect(html).toMatchObject({ title: 'Quay', text: 'Quays are walls.' });
    expect(await codeOf(readSourceFile(new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 1])], 'photo.png')))).toBe('content/not-text');
  });
});

describe('dropped files', () => {
  it('a drop of files gives them by name, ready for the workspace', async () => {
    const data = new DataTransfer();
    data.items.add(new File(['export const a = 1;\n'], 'a.ts'));
    data.items.add(new File(['# Readme\n'], 'README.md'));
    const { picked, skipped } = await droppedFiles(data);
    expect(skipped).toEqual([]);
    const read = await readWorkspaceFiles(picked);
    expect(read.files).toEqual([{ path: 'README.md', content: '# Readme\n' }, { path: 'a.ts', content: 'export const a = 1;\n' }]);
  });
});
