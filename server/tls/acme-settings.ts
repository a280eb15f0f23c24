/** What the configuration and the routes need to know of ACME, without loading the ACME client. */

/** Let's Encrypt's ACME directories. */
export const ACME_DIRECTORIES = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

/** The path prefix of HTTP-01 challenges (RFC 8555 §8.3). */
export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
