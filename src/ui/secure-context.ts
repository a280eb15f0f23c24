/**
 * What the shell tells a person about how this page and other devices reach the relay: a page opened over plain
 * HTTP (not a secure context: no service worker, no WebCrypto, no origin-private storage) and how to fix it; a
 * relay that listens on this machine only; and, on the relay's own machine, how to set up a phone for its local CA.
 */
import type { RelayInfo } from '../browser/relay-info.ts';

export interface PageFacts {
  /** `isSecureContext` of the page. */
  secure: boolean;
  /** location.host and location.origin. */
  host: string;
  origin: string;
}

export interface LocalCa {
  /** Where a phone downloads the CA certificate. */
  url: string;
  /** Its name as phones list it. */
  name: string;
}

export type ReachNotice =
  | { kind: 'insecure'; host: string; httpsUrl?: string; ca?: LocalCa; localUrl?: string }
  | { kind: 'local-only'; listensOn: string; origin: string }
  | { kind: 'phone-setup'; httpsUrl: string; phoneUrl: string; ca: LocalCa };

/** The https:// form of an http(s) origin, on the same port (the relay serves both there). */
const withScheme = (origin: string, scheme: 'http' | 'https'): string => origin.replace(/^https?:/, `${scheme}:`);

function localCa(info: RelayInfo, base: string): LocalCa | undefined {
  return info.tls === 'local' && info.caPath ? { url: `${base}${info.caPath}`, name: info.caName ?? 'Ferry local CA' } : undefined;
}

/** Null when there is nothing to say. `info` is undefined when the relay could not be asked. */
export function reachNotice(page: PageFacts, info: RelayInfo | undefined): ReachNotice | null {
  if (!page.secure) {
    if (!info || info.tls === 'off') {
      return { kind: 'insecure', host: page.host, ...(info ? { localUrl: `http://localhost:${info.listensOn.port}` } : {}) };
    }
    const httpsUrl = info.publicUrl?.startsWith('https:') ? info.publicUrl : withScheme(page.origin, 'https');
    const ca = localCa(info, page.origin);
    return { kind: 'insecure', host: page.host, httpsUrl, ...(ca ? { ca } : {}) };
  }
  if (!info) return null;
  if (info.listensOn.localOnly && !info.publicUrl) return { kind: 'local-only', listensOn: info.listensOn.host, origin: page.origin };
  if (info.publicUrl && info.publicUrl !== page.origin) {
    // Phones open the plain-HTTP page first: it carries these steps and the certificate.
    const phoneUrl = withScheme(info.publicUrl, 'http');
    const ca = localCa(info, phoneUrl);
    if (ca) return { kind: 'phone-setup', httpsUrl: info.publicUrl, phoneUrl, ca };
  }
  return null;
}
