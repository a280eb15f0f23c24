import { existsSync } from 'node:fs';

/** Where the tests look for Chromium: $CHROMIUM_PATH, else Debian's package. Tests never download a browser. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Flags for headless Chromium on a machine with no GPU and a closed network (see STACK.md): without the
 * background-networking flags Chromium floods the network with connections that are refused.
 */
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Fails loudly, with the fix, rather than skipping a browser suite. */
export function requireChromium(): string {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium not found at ${chromiumPath}. Install Debian's package (sudo apt-get install -y chromium) ` +
        'or set CHROMIUM_PATH to a Chromium binary. `npm test` installs it itself when run as root.',
    );
  }
  return chromiumPath;
}

/**
 * Flags that make Chromium trust a test certificate the way a device that installed it would (by the base64 SHA-256
 * of its public key, so no CA is added to the machine), and reach test host names at a local address.
 */
export function trustAndResolveArgs(opts: { trustSpki?: readonly string[]; mapHosts?: Readonly<Record<string, string>> }): string[] {
  const args: string[] = [];
  if (opts.trustSpki?.length) args.push(`--ignore-certificate-errors-spki-list=${opts.trustSpki.join(',')}`);
  const rules = Object.entries(opts.mapHosts ?? {}).map(([name, address]) => `MAP ${name} ${address}`);
  if (rules.length) args.push(`--host-resolver-rules=${rules.join(',')}`);
  return args;
}
