/**
 * Where the shared backends are, as given on the command line: parsed and checked for form without loading their
 * clients (the AWS SDK and pg load only when a relay opens them).
 */
import { FerryError } from '../../src/core/errors.ts';

export interface SharedLocation {
  /** postgres://user:password@host:port/database */
  database: string;
  /** s3://bucket[/prefix]?endpoint=…&region=… */
  objects: string;
}

export interface S3Location {
  bucket: string;
  /** Key prefix ("" or ending in "/"), so several relays or tests may share a bucket. */
  prefix: string;
  /** Another S3-compatible service (R2, MinIO…); absent: AWS S3 itself. */
  endpoint?: string;
  region: string;
  /** Bucket in the path rather than the host name: what MinIO and most self-hosted servers need. */
  forcePathStyle: boolean;
}

/**
 * `s3://bucket[/prefix]?endpoint=URL&region=NAME&path-style=true|false`. Without an endpoint it is AWS S3 (region
 * from the query or AWS_REGION); with one, path-style unless told otherwise.
 */
export function parseObjectsUrl(text: string, env: NodeJS.ProcessEnv = process.env): S3Location {
  const bad = (why: string): FerryError =>
    new FerryError('config/bad-objects', `"${text}" is not an object storage location (${why}): write s3://bucket[/prefix]?endpoint=https://host&region=name (--objects or FERRY_OBJECTS).`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 's3:') throw bad('the scheme must be s3://');
  const bucket = url.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw bad('the bucket name must be 3–63 lower-case letters, digits, dots or hyphens');
  const path = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
  const endpoint = url.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/i.test(endpoint)) throw bad('endpoint must be an http(s) URL');
  const style = url.searchParams.get('path-style');
  if (style !== null && style !== 'true' && style !== 'false') throw bad('path-style must be true or false');
  const known = new Set(['endpoint', 'region', 'path-style']);
  for (const key of url.searchParams.keys()) if (!known.has(key)) throw bad(`unknown option "${key}"`);
  return {
    bucket,
    prefix: path === '' ? '' : `${path}/`,
    ...(endpoint ? { endpoint } : {}),
    region: url.searchParams.get('region') ?? env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: style === null ? endpoint !== undefined : style === 'true',
  };
}


/** The URL without its password, for messages and logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an unparsable database URL)';
  }
}
