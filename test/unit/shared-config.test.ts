/** `--database` and `--objects` (and their environment variables): both or neither, each checked for form. */
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../server/config.ts';
import { parseObjectsUrl } from '../../server/store/locations.ts';
import { isFerryError } from '../../src/core/errors.ts';

const TOKEN = 't'.repeat(43);

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isFerryError(err) ? err.code : String(err);
  }
};

describe('shared backend configuration', () => {
  it('is off by default: one process on SQLite and files', () => {
    expect(resolveConfig([], {}).shared).toBeUndefined();
  });

  it('takes flags, or the environment, flags first', () => {
    const env = { FERRY_DATABASE: 'postgres://env@db/ferry', FERRY_OBJECTS: 's3://env-bucket', FERRY_WORKER_TOKEN: TOKEN };
    expect(resolveConfig([], env).shared).toEqual({ database: 'postgres://env@db/ferry', objects: 's3://env-bucket' });
    expect(resolveConfig(['--database', 'postgresql://u:p@h:5432/d', '--objects', 's3://b-1/p?endpoint=http://h:9000'], env).shared).toEqual({ database: 'postgresql://u:p@h:5432/d', objects: 's3://b-1/p?endpoint=http://h:9000' });
  });

  it('needs one worker token for every replica', () => {
    expect(code(() => resolveConfig(['--database', 'postgres://h/d', '--objects', 's3://bucket'], {}))).toBe('config/worker-token-required');
  });

  it('refuses one without the other, and malformed locations, without echoing a password', () => {
    expect(code(() => resolveConfig(['--database', 'postgres://h/d'], { FERRY_WORKER_TOKEN: TOKEN }))).toBe('config/shared-incomplete');
    expect(code(() => resolveConfig([], { FERRY_OBJECTS: 's3://bucket' }))).toBe('config/shared-incomplete');
    expect(code(() => resolveConfig(['--database', 'mysql://u:secret@h/d', '--objects', 's3://bucket'], {}))).toBe('config/bad-database');
    expect(() => resolveConfig(['--database', 'mysql://u:secret@h/d', '--objects', 's3://bucket'], {})).toThrow(/\*\*\*/);
    expect(code(() => resolveConfig(['--database', 'postgres://h/d', '--objects', 'https://bucket'], {}))).toBe('config/bad-objects');
    expect(code(() => resolveConfig(['--database', 'postgres://h/d', '--objects', 's3://B'], {}))).toBe('config/bad-objects');
    expect(code(() => resolveConfig(['--database', 'postgres://h/d', '--objects', 's3://bucket?endpoint=ftp://x'], {}))).toBe('config/bad-objects');
    expect(code(() => resolveConfig(['--database', 'postgres://h/d', '--objects', 's3://bucket?colour=blue'], {}))).toBe('config/bad-objects');
  });

  it('reads an object storage location: bucket, prefix, endpoint, region and addressing style', () => {
    expect(parseObjectsUrl('s3://ferry-data', {})).toEqual({ bucket: 'ferry-data', prefix: '', region: 'us-east-1', forcePathStyle: false });
    expect(parseObjectsUrl('s3://ferry-data', { AWS_REGION: 'eu-west-3' }).region).toBe('eu-west-3');
    expect(parseObjectsUrl('s3://ferry/team/a/?endpoint=https://acct.r2.cloudflarestorage.com&region=auto&path-style=false', {})).toEqual({
      bucket: 'ferry', prefix: 'team/a/', endpoint: 'https://acct.r2.cloudflarestorage.com', region: 'auto', forcePathStyle: false,
    });
    expect(parseObjectsUrl('s3://ferry?endpoint=http://minio:9000', {}).forcePathStyle).toBe(true);
  });
});
