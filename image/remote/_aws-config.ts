/**
 * The common part of the AWS SDKs' configuration chain, for `s3://`: explicit options, then
 * environment variables, then the shared credentials and config files of a profile.
 *
 * - Keys: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) when both are
 *   set; else the profile's `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`
 *   from the credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`,
 *   section `[NAME]`), else from the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`,
 *   section `[profile NAME]`, or `[default]`). NAME is `AWS_PROFILE`, else `default`.
 * - Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the config file, else
 *   us-east-1. Endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
 *   `endpoint_url`, else AWS's own names.
 * - Not read: SSO, assumed roles (`role_arn`, `source_profile`), `credential_process`, web
 *   identity tokens, the container and instance metadata endpoints (ECS, IMDS). A profile that
 *   names one of those and holds no keys is refused with INVALID_ARGUMENT saying so, rather
 *   than sending unsigned requests.
 *
 * Files are read whole but bounded ({@link MAX_CONFIG_BYTES}); a missing file is no file (as
 * the SDKs do). Messages name files, lines and profiles, never a value.
 */
import { Buffer } from 'node:buffer';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CrimgError } from '../../format/errors.js';

/** A config or credentials file larger than this is refused (they are a few hundred bytes). */
export const MAX_CONFIG_BYTES = 1 << 20;

/** What the chain gives; each field may be absent. */
export interface AwsSettings {
  region?: string;
  endpoint?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Where the keys came from, for messages: `environment`, `credentials file [NAME]`, ... (never a value). */
  keySource?: string;
}

/** Sections of an INI file: name -> key -> value (keys lower-cased; sub-section lines skipped). */
export type Ini = Map<string, Map<string, string>>;

/**
 * Parses the AWS INI dialect: `[section]`, `key = value`, comments from `#` or `;` at a line's
 * start, indented lines (a sub-section's settings, such as `s3 =` blocks) skipped.
 * @throws CrimgError INVALID_ARGUMENT for a line that is none of these (naming file and line)
 */
export function parseIni(text: string, file: string): Ini {
  const out: Ini = new Map();
  let section: Map<string, string> | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (/^[ \t]/.test(raw)) continue; // a nested setting of the key above
    const head = /^\[([^\]]*)\]\s*([#;].*)?$/.exec(line);
    if (head) {
      const name = head[1]!.trim().replace(/\s+/g, ' ');
      section = out.get(name) ?? new Map<string, string>();
      out.set(name, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new CrimgError('INVALID_ARGUMENT', `${file} line ${i + 1} is neither [section] nor key = value`, { hint: 'fix or remove that line' });
    }
    if (section === null) continue; // settings before any section belong to none
    section.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Reads and parses `file`, or null when it does not exist. Opened once (non-blocking, so a FIFO
 * never waits for a writer), checked to be a regular file, and read up to the cap: a file that
 * grows after the check, or a device, is never read past it.
 */
function readIni(file: string): Ini | null {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CrimgError('IO_ERROR', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { hint: 'check its permissions' });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new CrimgError('INVALID_ARGUMENT', `${file} is not a regular file`, { hint: 'point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE at the right file' });
    }
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let got = 0;
    for (let n; got < buf.length && (n = readSync(fd, buf, got, buf.length - got, null)) > 0;) got += n;
    if (got > MAX_CONFIG_BYTES) {
      throw new CrimgError('INVALID_ARGUMENT', `${file} is more than ${MAX_CONFIG_BYTES} bytes for an AWS config or credentials file`, { hint: 'point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE at the right file' });
    }
    return parseIni(buf.subarray(0, got).toString('utf8'), file);
  } catch (e) {
    if (e instanceof CrimgError) throw e;
    throw new CrimgError('IO_ERROR', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { hint: 'check its permissions' });
  } finally {
    closeSync(fd);
  }
}

/** `~/x` and `~` as the SDKs expand them. */
function expandHome(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** Settings a profile names that this chain does not follow. */
const UNSUPPORTED = ['credential_process', 'sso_session', 'sso_start_url', 'role_arn', 'web_identity_token_file', 'credential_source'];

/**
 * The environment and profile part of the chain (explicit options are applied by the caller
 * over this; `explicitKeys`: the options give the keys, so none are looked up).
 * @throws CrimgError INVALID_ARGUMENT for a malformed or oversized file, a profile named by
 *   AWS_PROFILE found in neither file, or a profile that needs a source not read here
 */
export function awsSettings(env: NodeJS.ProcessEnv = process.env, explicitKeys = false): AwsSettings {
  const out: AwsSettings = {};
  out.region = nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION);
  out.endpoint = nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const envId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const envSecret = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (explicitKeys) {
    out.keySource = 'options';
  } else if (envId && envSecret) {
    out.accessKeyId = envId;
    out.secretAccessKey = envSecret;
    out.sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
    out.keySource = 'environment';
  }
  if (out.region && out.endpoint && out.keySource) return out; // nothing left for the files
  const profile = nonEmpty(env.AWS_PROFILE) ?? 'default';
  const credFile = expandHome(nonEmpty(env.AWS_SHARED_CREDENTIALS_FILE) ?? join(homedir(), '.aws', 'credentials'));
  const confFile = expandHome(nonEmpty(env.AWS_CONFIG_FILE) ?? join(homedir(), '.aws', 'config'));
  const cred = readIni(credFile)?.get(profile);
  const confIni = readIni(confFile);
  const conf = confIni?.get(profile === 'default' ? 'default' : `profile ${profile}`) ?? (profile === 'default' ? confIni?.get('profile default') : undefined);
  if (!cred && !conf && env.AWS_PROFILE && !out.keySource) {
    throw new CrimgError('INVALID_ARGUMENT', `AWS_PROFILE names profile "${profile}", found in neither ${credFile} nor ${confFile}`, { hint: 'add the profile, or unset AWS_PROFILE' });
  }
  out.region ??= nonEmpty(conf?.get('region'));
  out.endpoint ??= nonEmpty(conf?.get('endpoint_url'));
  if (!out.keySource) {
    for (const [section, where] of [[cred, `${credFile} [${profile}]`], [conf, `${confFile} [${profile === 'default' ? 'default' : `profile ${profile}`}]`]] as const) {
      const id = nonEmpty(section?.get('aws_access_key_id'));
      const secret = nonEmpty(section?.get('aws_secret_access_key'));
      if (id && secret) {
        out.accessKeyId = id;
        out.secretAccessKey = secret;
        out.sessionToken = nonEmpty(section?.get('aws_session_token'));
        out.keySource = where;
        break;
      }
      if (id || secret) {
        throw new CrimgError('INVALID_ARGUMENT', `${where} has ${id ? 'aws_access_key_id without aws_secret_access_key' : 'aws_secret_access_key without aws_access_key_id'}`, { hint: 'give both keys' });
      }
    }
  }
  if (!out.keySource) {
    const named = UNSUPPORTED.find((k) => cred?.has(k) || conf?.has(k));
    if (named) {
      throw new CrimgError('INVALID_ARGUMENT', `profile "${profile}" gets its keys through ${named}, which crimg does not follow (it reads keys from the environment and the credentials and config files only)`, {
        hint: 'export the keys first, e.g. eval "$(aws configure export-credentials --format env)"',
      });
    }
  }
  return out;
}
