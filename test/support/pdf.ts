/**
 * A small, valid PDF made here (no download, no PDF library): one page per entry of `pages`, each line of text
 * drawn with the standard Helvetica font, a cross-reference table with exact byte offsets, and a title in the
 * document information dictionary. What the browser's PDF reader must get back is exactly these lines.
 */
export function makePdf(pages: readonly (readonly string[])[], title?: string): Uint8Array<ArrayBuffer> {
  const objects: string[] = [];
  const add = (body: string): number => objects.push(body);
  const catalog = add('');
  const pagesId = add('');
  const font = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
  const kids: number[] = [];
  for (const lines of pages) {
    const ops = ['BT', '/F1 12 Tf', '14 TL', '72 720 Td', ...lines.map((l, i) => `${i === 0 ? '' : 'T* '}(${escape(l)}) Tj`), 'ET'].join('\n');
    const content = add(`<< /Length ${ops.length} >>\nstream\n${ops}\nendstream`);
    kids.push(add(`<< /Type /Page /Parent ${pagesId} 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 ${font} 0 R >> >> /Contents ${content} 0 R >>`));
  }
  objects[catalog - 1] = `<< /Type /Catalog /Pages ${pagesId} 0 R >>`;
  objects[pagesId - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`;
  const info = title === undefined ? undefined : add(`<< /Title (${escape(title)}) /Producer (Ferry tests) >>`);
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root ${catalog} 0 R${info ? ` /Info ${info} 0 R` : ''} >>\nstartxref\n${xref}\n%%EOF\n`;
  // Every character above is ASCII: string length and byte offsets agree.
  return new TextEncoder().encode(out);
}

function escape(text: string): string {
  if (/[^\x20-\x7e]/.test(text)) throw new Error('makePdf writes printable ASCII only');
  return text.replace(/[\\()]/g, (c) => `\\${c}`);
}
