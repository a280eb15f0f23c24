/**
 * Making certificates with @peculiar/x509 (X.509 on WebCrypto) and reading them back with Node's X509Certificate:
 * a certificate authority for a home network and server certificates it signs. Keys are ECDSA P-256, which every
 * phone browser accepts.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints, id_ce_nameConstraints } from '@peculiar/asn1-x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const keyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** The names a server certificate is for: host names and IP addresses. */
export interface Names {
  dns: string[];
  ips: string[];
}

/** A certificate and its private key, both PEM. */
export interface Pem {
  cert: string;
  key: string;
}

/**
 * What a local CA may sign, besides the names it was made for: private and loopback addresses and the host-name
 * suffixes of home networks. A phone that trusts the CA then trusts it for nothing on the public internet.
 */
export const HOME_NETWORK_NAMES: Names = {
  dns: ['localhost', 'local', 'lan', 'home.arpa', 'internal'],
  ips: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '::1/128', 'fc00::/7', 'fe80::/10'],
};

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privatePem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey), 'PRIVATE KEY');
}

async function importPrivate(pem: string): Promise<CryptoKey> {
  return (await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), keyAlgorithm, false, ['sign'])) as CryptoKey;
}

const serial = (): string => {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // a positive INTEGER
  return bytes.toString('hex');
};

const sanOf = (names: Names): x509.SubjectAlternativeNameExtension =>
  new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]);

/** A single IP becomes a one-address range; a CIDR range stays as it is. */
const ipRange = (ip: string): string => (ip.includes('/') ? ip : `${ip}/${isIP(ip) === 6 ? 128 : 32}`);

function nameConstraints(permitted: Names): x509.Extension {
  const subtrees = new GeneralSubtrees([
    ...permitted.dns.map((dNSName) => new GeneralSubtree({ base: new GeneralName({ dNSName }) })),
    ...permitted.ips.map((ip) => new GeneralSubtree({ base: new GeneralName({ iPAddress: ipRange(ip) }) })),
  ]);
  return new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(new NameConstraints({ permittedSubtrees: subtrees })));
}

/**
 * A certificate authority that may sign for the home network's names plus `names` (name-constrained), valid
 * `days` days. Its common name says whose machine made it, so a person recognises it in the phone's settings.
 */
export async function makeCa(label: string, names: Names, now = new Date(), days = 3650): Promise<Pem> {
  const keys = await newKeys();
  const permitted = { dns: unique([...HOME_NETWORK_NAMES.dns, ...names.dns]), ips: unique([...HOME_NETWORK_NAMES.ips, ...names.ips]) };
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(`Ferry local CA (${label})`)}, O=Ferry`,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + days * DAY),
    signingAlgorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      nameConstraints(permitted),
    ],
  });
  return { cert: cert.toString('pem'), key: await privatePem(keys.privateKey) };
}

/**
 * A server certificate for `names`, signed by `ca`. 397 days at most: Apple's platforms refuse server certificates
 * valid for longer, whoever signed them.
 */
export async function issueServerCertificate(ca: Pem, names: Names, now = new Date(), days = 397): Promise<Pem> {
  const keys = await newKeys();
  const issuer = new x509.X509Certificate(ca.cert);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${escapeDn(names.dns[0] ?? names.ips[0] ?? 'ferry')}`,
    issuer: issuer.subject,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + days * DAY),
    signingAlgorithm,
    publicKey: keys.publicKey,
    signingKey: await importPrivate(ca.key),
    extensions: serverExtensions(names, [await x509.AuthorityKeyIdentifierExtension.create(issuer), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)]),
  });
  return { cert: cert.toString('pem'), key: await privatePem(keys.privateKey) };
}

function serverExtensions(names: Names, more: x509.Extension[]): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    sanOf(names),
    ...more,
  ];
}

/** True once two thirds of a certificate's life have passed: renewing then leaves a third to spare. */
export function renewalDue(facts: { notBefore: Date; notAfter: Date }, now: Date): boolean {
  const life = facts.notAfter.getTime() - facts.notBefore.getTime();
  return now.getTime() >= facts.notBefore.getTime() + (life * 2) / 3;
}

/** What the relay needs to know about a certificate it holds. */
export interface CertificateFacts {
  notBefore: Date;
  notAfter: Date;
  /** The subject's common name. */
  commonName: string | undefined;
  /** Base64 SHA-256 of its SubjectPublicKeyInfo (what HPKP and Chromium's SPKI allow-list use). */
  spkiSha256: string;
  /** True when it covers every one of `names`. */
  covers(names: Names): boolean;
  /** True when `issuer` signed it. */
  signedBy(issuer: string): boolean;
  /** True when `key` (PEM) is its private key. */
  matches(key: string): boolean;
}

export function certificateFacts(pem: string): CertificateFacts {
  const cert = new X509Certificate(pem);
  return {
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    commonName: /^CN=(.*)$/m.exec(cert.subject)?.[1],
    spkiSha256: createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64'),
    // checkHost/checkIP never fall back to the subject when alternative names are present.
    covers: (names) => names.dns.every((n) => cert.checkHost(n, { wildcards: false }) !== undefined) && names.ips.every((ip) => cert.checkIP(ip) !== undefined),
    signedBy: (issuer) => {
      const ca = new X509Certificate(issuer);
      return cert.checkIssued(ca) && cert.verify(ca.publicKey);
    },
    matches: (key) => {
      const spki = (k: ReturnType<typeof createPublicKey>): Buffer => k.export({ type: 'spki', format: 'der' });
      return spki(createPublicKey(createPrivateKey(key))).equals(spki(cert.publicKey));
    },
  };
}

/** The names a CA's name constraints permit (undefined: it has none, so it may sign for any name). */
export function permittedNames(caPem: string): Names | undefined {
  const ext = new x509.X509Certificate(caPem).getExtension(id_ce_nameConstraints);
  if (!ext) return undefined;
  const parsed = AsnConvert.parse(ext.value, NameConstraints);
  const names: Names = { dns: [], ips: [] };
  for (const subtree of parsed.permittedSubtrees ?? []) {
    if (subtree.base.dNSName !== undefined) names.dns.push(subtree.base.dNSName);
    if (subtree.base.iPAddress !== undefined) names.ips.push(subtree.base.iPAddress);
  }
  return names;
}

/** True when a CA permitting `permitted` may sign for every one of `names` (RFC 5280 name-constraint matching). */
export function permits(permitted: Names, names: Names): boolean {
  const dnsOk = (name: string): boolean => {
    const n = name.toLowerCase();
    return permitted.dns.some((c) => {
      const base = c.toLowerCase().replace(/^\./, '');
      return n === base || n.endsWith(`.${base}`);
    });
  };
  return names.dns.every(dnsOk) && names.ips.every((ip) => permitted.ips.some((range) => inRange(ip, range)));
}

function inRange(ip: string, range: string): boolean {
  const [base, bitsText] = range.split('/');
  const a = ipBytes(ip);
  const b = ipBytes(base!);
  if (!a || !b || a.length !== b.length) return false;
  let bits = bitsText === undefined ? a.length * 8 : Number(bitsText);
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

function ipBytes(ip: string): number[] | undefined {
  const kind = isIP(ip);
  if (kind === 4) return ip.split('.').map(Number);
  if (kind !== 6) return undefined;
  const [head = '', tail] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

const unique = (xs: string[]): string[] => [...new Set(xs)];

/** RFC 4514 escaping for a value in a distinguished name. */
const escapeDn = (value: string): string => value.replace(/[,+"\\<>;=]/g, (c) => `\\${c}`);

/** A PEM certificate as DER bytes (what phones install). */
export const certificateDer = (pem: string): Buffer => Buffer.from(x509.PemConverter.decodeFirst(pem));
