/**
 * Certificates for a public name from an ACME CA (Let's Encrypt by default) with acme-client, over the HTTP-01
 * challenge: the CA fetches http://<domain>/.well-known/acme-challenge/<token> on port 80, which the relay answers
 * from `challenges`. The account key and the certificate are kept in <data>/tls/acme; a stored certificate is used
 * at once and renewed once two thirds of its life have passed, checked twice a day (and an hour after a failure).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as acme from 'acme-client';
import { FerryError } from '../../src/core/errors.ts';
import { certificateFacts, renewalDue, type Pem } from './certificates.ts';
import { readPem, writePem } from './pem-files.ts';

export interface AcmeSettings {
  /** The names the certificate is for; the first is its subject. */
  domains: string[];
  /** Where the CA may write about the account (expiry notices, policy changes); optional. */
  email?: string | undefined;
  /** The CA's ACME directory URL. */
  directoryUrl: string;
}

const HOUR = 3_600_000;
export const CHECK_EVERY_MS = 12 * HOUR;
export const RETRY_AFTER_MS = HOUR;

/** When the next look at the certificate is due: soon after a failure, else twice a day. */
export function nextCheckIn(failed: boolean): number {
  return failed ? RETRY_AFTER_MS : CHECK_EVERY_MS;
}

export class AcmeCertificates {
  /** Token → key authorization of the challenges in flight; the relay's challenge route answers from it. */
  readonly challenges = new Map<string, string>();
  readonly #dir: string;
  readonly #files: { account: string; cert: string; key: string };
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    dataDir: string,
    readonly settings: AcmeSettings,
    private readonly log: { info(msg: string): void; error(details: object, msg: string): void },
  ) {
    this.#dir = path.join(dataDir, 'tls', 'acme');
    const base = settings.domains[0]!.replace(/[^a-z0-9.-]/gi, '_');
    this.#files = { account: path.join(this.#dir, 'account.key'), cert: path.join(this.#dir, `${base}.crt`), key: path.join(this.#dir, `${base}.key`) };
  }

  /** The stored certificate when it is for these domains and still valid (renewal due or not), else undefined. */
  async stored(now = new Date()): Promise<Pem | undefined> {
    const pem = await readPem(this.#files.cert, this.#files.key);
    if (!pem) return undefined;
    const facts = certificateFacts(pem.cert);
    return facts.covers({ dns: this.settings.domains, ips: [] }) && facts.notAfter > now ? pem : undefined;
  }

  /** True when there is no usable certificate, or two thirds of its life have passed. */
  async due(now = new Date()): Promise<boolean> {
    const pem = await this.stored(now);
    return !pem || renewalDue(certificateFacts(pem.cert), now);
  }

  /** Orders a certificate from the CA now and stores it (the account is registered on first use). */
  async obtain(): Promise<Pem> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const client = new acme.Client({ directoryUrl: this.settings.directoryUrl, accountKey: await this.#accountKey() });
    const [key, csr] = await acme.crypto.createCsr({ commonName: this.settings.domains[0]!, altNames: this.settings.domains }, await acme.crypto.createPrivateEcdsaKey());
    let cert: string;
    try {
      cert = await client.auto({
        csr,
        ...(this.settings.email ? { email: this.settings.email } : {}),
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        // The CA checks from outside; a check from here fails on home routers without NAT hairpinning.
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => void this.challenges.set(challenge.token, keyAuthorization),
        challengeRemoveFn: async (_authz, challenge) => void this.challenges.delete(challenge.token),
      });
    } catch (cause) {
      throw new FerryError('tls/acme-failed', `The ACME CA at ${this.settings.directoryUrl} did not issue a certificate for ${this.settings.domains.join(', ')}: ${cause instanceof Error ? cause.message : String(cause)}. The name must resolve to this machine and port 80 must reach the relay (--acme-http-port).`, { cause });
    }
    const pem = { cert, key: key.toString() };
    await writePem(this.#files.cert, this.#files.key, pem);
    return pem;
  }

  /**
   * Keeps the certificate fresh: obtains one now when due, then looks again every CHECK_EVERY_MS (RETRY_AFTER_MS
   * after a failure), handing every new certificate to `use`. Timers never keep the process alive.
   */
  start(use: (pem: Pem) => void): void {
    const check = async (): Promise<void> => {
      let failed = false;
      try {
        if (await this.due()) {
          const pem = await this.obtain();
          if (this.#closed) return;
          use(pem);
          this.log.info(`certificate for ${this.settings.domains.join(', ')} obtained; valid until ${certificateFacts(pem.cert).notAfter.toISOString()}`);
        }
      } catch (err) {
        failed = true;
        this.log.error({ err }, `could not obtain a certificate for ${this.settings.domains.join(', ')}; trying again in an hour`);
      }
      if (!this.#closed) this.#timer = setTimeout(() => void check(), nextCheckIn(failed)).unref();
    };
    void check();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #accountKey(): Promise<Buffer> {
    try {
      return await readFile(this.#files.account);
    } catch {
      const key = await acme.crypto.createPrivateEcdsaKey();
      const temp = `${this.#files.account}.${process.pid}.tmp`;
      await writeFile(temp, key, { mode: 0o600 });
      await rename(temp, this.#files.account);
      return key;
    }
  }
}
