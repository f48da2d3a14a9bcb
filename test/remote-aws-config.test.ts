/**
 * The S3 settings chain (image/remote/_aws-config.ts) on temporary files named by
 * AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE (no real home directory is read or written):
 * environment over files, the credentials file over the config file, AWS_PROFILE and
 * `[profile NAME]`, AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL, session tokens, and coded
 * refusals (malformed line, oversized file, unknown profile, half a key pair, a profile that
 * needs SSO or a credential process) whose messages never carry a value.
 */
import { writeFileSync } from 'node:fs';
import { awsSettings, MAX_CONFIG_BYTES } from '../image/remote/_aws-config.js';
import { s3Target } from '../image/remote/_s3.js';
import { CrimgError } from '../format/errors.js';
import { tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

let n = 0;
/** Env naming two fresh files with these contents. */
function files(credentials: string, config: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  n++;
  const c = t.path(`credentials-${n}`);
  const f = t.path(`config-${n}`);
  writeFileSync(c, credentials);
  writeFileSync(f, config);
  return { AWS_SHARED_CREDENTIALS_FILE: c, AWS_CONFIG_FILE: f, ...extra };
}

function refusal(env: NodeJS.ProcessEnv): CrimgError {
  try {
    awsSettings(env);
  } catch (e) {
    expect(e).toBeInstanceOf(CrimgError);
    return e as CrimgError;
  }
  throw new Error('awsSettings accepted it');
}

const CREDS = '# keys\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = secret-default\n\n[ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=secret-ci\naws_session_token = token-ci\n';
const CONFIG = '[default]\nregion = eu-west-1\n; comment\n[profile ci]\nregion = ap-south-1\nendpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n[profile only-config]\naws_access_key_id = AKIDCONF\naws_secret_access_key = secret-conf\n';

describe('S3 settings chain', () => {
  test('the default profile from the files; the environment wins key pair by key pair, region and endpoint one by one', () => {
    expect(awsSettings(files(CREDS, CONFIG))).toEqual({ region: 'eu-west-1', endpoint: undefined, accessKeyId: 'AKIDDEFAULT', secretAccessKey: 'secret-default', sessionToken: undefined, keySource: expect.stringContaining('[default]') });
    const env = files(CREDS, CONFIG, { AWS_ACCESS_KEY_ID: 'AKIDENV', AWS_SECRET_ACCESS_KEY: 'secret-env', AWS_SESSION_TOKEN: 'token-env', AWS_DEFAULT_REGION: 'us-west-2', AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'http://b:2' });
    expect(awsSettings(env)).toMatchObject({ accessKeyId: 'AKIDENV', secretAccessKey: 'secret-env', sessionToken: 'token-env', region: 'us-west-2', endpoint: 'http://b:2', keySource: 'environment' });
    expect(awsSettings({ ...env, AWS_REGION: 'ca-central-1', AWS_ENDPOINT_URL_S3: '' })).toMatchObject({ region: 'ca-central-1', endpoint: 'http://a:1' });
    // Half a pair in the environment is no pair: the files' keys are used.
    expect(awsSettings({ ...env, AWS_SECRET_ACCESS_KEY: '' })).toMatchObject({ accessKeyId: 'AKIDDEFAULT', sessionToken: undefined });
  });

  test('AWS_PROFILE: the credentials file [NAME], the config file [profile NAME] (region, endpoint_url, keys when the credentials file has none)', () => {
    expect(awsSettings(files(CREDS, CONFIG, { AWS_PROFILE: 'ci' }))).toMatchObject({ accessKeyId: 'AKIDCI', secretAccessKey: 'secret-ci', sessionToken: 'token-ci', region: 'ap-south-1', endpoint: 'http://127.0.0.1:9000' });
    expect(awsSettings(files(CREDS, CONFIG, { AWS_PROFILE: 'only-config' }))).toMatchObject({ accessKeyId: 'AKIDCONF', secretAccessKey: 'secret-conf', keySource: expect.stringContaining('[profile only-config]') });
    // Missing files are no files: nothing found, nothing thrown (unsigned requests).
    expect(awsSettings({ AWS_SHARED_CREDENTIALS_FILE: t.path('none-1'), AWS_CONFIG_FILE: t.path('none-2') })).toEqual({ region: undefined, endpoint: undefined });
  });

  test('s3Target signs with the profile keys at the profile endpoint; explicit options win over everything', async () => {
    const env = files(CREDS, CONFIG, { AWS_PROFILE: 'ci' });
    const target = s3Target('s3://bucket/a/b.img', {}, env);
    expect(target.objectUrl.href).toBe('http://127.0.0.1:9000/bucket/a/b.img');
    const h = await target.sign('GET', target.objectUrl, {});
    expect(h.authorization).toContain('Credential=AKIDCI/');
    expect(h.authorization).toContain('/ap-south-1/s3/');
    expect(h['x-amz-security-token']).toBe('token-ci');
    const explicit = s3Target('s3://bucket/k', { accessKeyId: 'AKIDOPT', secretAccessKey: 'secret-opt', region: 'sa-east-1', endpoint: 'http://c:3' }, { ...env, AWS_PROFILE: 'nosuch' });
    const h2 = await explicit.sign('GET', explicit.objectUrl, {});
    expect(h2.authorization).toContain('Credential=AKIDOPT/');
    expect(h2.authorization).toContain('/sa-east-1/s3/');
    expect(h2['x-amz-security-token']).toBeUndefined();
  });

  test('refusals are INVALID_ARGUMENT naming the file, line or profile and never a value', () => {
    const bad = refusal(files('[default]\naws_access_key_id = AKIDX\nthis line has no equals sign secret-zzz\n', ''));
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(bad.message).toMatch(/credentials-\d+ line 3/);
    expect(bad.message).not.toContain('secret-zzz');
    const half = refusal(files('[default]\naws_access_key_id = AKIDHALF\n', ''));
    expect(half.message).toContain('aws_access_key_id without aws_secret_access_key');
    expect(half.message).not.toContain('AKIDHALF');
    const unknown = refusal(files(CREDS, CONFIG, { AWS_PROFILE: 'nosuch' }));
    expect(unknown.message).toContain('"nosuch"');
    for (const setting of ['credential_process = /bin/echo secret-proc', 'sso_session = corp', 'role_arn = arn:aws:iam::1:role/x']) {
      const e = refusal(files('', `[profile p]\n${setting}\n`, { AWS_PROFILE: 'p' }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(setting.split(' ')[0]);
      expect(e.message).not.toContain('secret-proc');
      expect(e.hint).toContain('export-credentials');
    }
    const big = refusal(files(`[default]\n${'#'.repeat(MAX_CONFIG_BYTES)}\n`, ''));
    expect(big.message).toContain(`more than ${MAX_CONFIG_BYTES}`);
    // A device named by the environment is refused, never read until memory runs out.
    const device = refusal({ ...files(CREDS, CONFIG), AWS_CONFIG_FILE: '/dev/zero', AWS_SHARED_CREDENTIALS_FILE: '/dev/zero' });
    expect(device.message).toContain('/dev/zero is not a regular file');
  });
});
