/**
 * S3 addressing and request signing. `s3://BUCKET/KEY` becomes an HTTP(S) URL: path style
 * under an endpoint (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or `endpoint`: any S3-compatible
 * server), else AWS's virtual-hosted name for the region. Requests are signed with Signature
 * Version 4 by aws4fetch's `AwsV4Signer` (a maintained 88 KB signer with no dependencies;
 * the official SDK v3 client with lib-storage is 23 MB in 38 packages and takes ~200 ms to
 * import against ~7 ms, for the five calls used here). Settings come from the options, else
 * the environment and the shared credentials and config files (image/remote/_aws-config.ts).
 * Without credentials requests go unsigned (public buckets). The secret is only ever an input
 * of the signature.
 */
import { AwsV4Signer } from 'aws4fetch';
import { CrimgError } from '../../format/errors.js';
import { awsSettings } from './_aws-config.js';

/** Explicit S3 settings; each one left out comes from the environment. */
export interface S3Options {
  /** Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000` (path-style addressing). Env: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url. */
  endpoint?: string;
  /** Env: AWS_REGION, AWS_DEFAULT_REGION, the profile's region; default us-east-1. */
  region?: string;
  /** With secretAccessKey; else AWS_ACCESS_KEY_ID, else the profile's keys (AWS_PROFILE, credentials and config files). */
  accessKeyId?: string;
  /** With accessKeyId; else AWS_SECRET_ACCESS_KEY, else the profile's. */
  secretAccessKey?: string;
  /** Used with explicit keys; else AWS_SESSION_TOKEN, else the profile's aws_session_token. */
  sessionToken?: string;
}

/** Signs a request: returns the headers to send (the given ones, plus date, hash and authorization). */
export type Signer = (method: string, url: URL, headers: Record<string, string>) => Promise<Record<string, string>>;

export interface S3Target {
  /** The object's URL (path style under an endpoint, else virtual-hosted). */
  objectUrl: URL;
  /** `s3://bucket/key`, for messages. */
  name: string;
  sign: Signer;
}

/** Whether `s` is an `s3://` URL. */
export function isS3Url(s: string): boolean {
  return /^s3:\/\//i.test(s);
}

/**
 * The URL and signer of `s3://bucket/key`.
 * @throws CrimgError INVALID_ARGUMENT for a URL without bucket or key, or a bad endpoint
 */
export function s3Target(url: string, options: S3Options = {}, env: NodeJS.ProcessEnv = process.env): S3Target {
  const m = /^s3:\/\/([^/?#]+)\/([^?#]+)$/i.exec(url);
  if (!m) {
    throw new CrimgError('INVALID_ARGUMENT', `${JSON.stringify(url.replace(/[?#].*$/s, ''))} is not an s3://BUCKET/KEY URL`, { hint: 'write s3://bucket/path/to/image.img' });
  }
  const bucket = m[1]!;
  const key = m[2]!;
  const explicitKeys = Boolean(options.accessKeyId && options.secretAccessKey);
  const chain = options.region && options.endpoint && explicitKeys ? {} : awsSettings(env, explicitKeys);
  const region = options.region ?? chain.region ?? 'us-east-1';
  const endpoint = options.endpoint ?? chain.endpoint;
  const path = key.split('/').map((s) => encodeURIComponent(s)).join('/');
  let objectUrl: URL;
  if (endpoint) {
    let base: URL;
    try {
      base = new URL(endpoint);
    } catch {
      throw new CrimgError('INVALID_ARGUMENT', 'the S3 endpoint (AWS_ENDPOINT_URL or endpoint) is not a URL', { hint: 'give it as http(s)://host:port' });
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new CrimgError('INVALID_ARGUMENT', `the S3 endpoint must be http: or https:, got ${base.protocol}`);
    const prefix = base.pathname.replace(/\/+$/, '');
    objectUrl = new URL(`${base.protocol}//${base.host}${prefix}/${encodeURIComponent(bucket)}/${path}`);
  } else {
    objectUrl = new URL(`https://${bucket}.s3.${region}.amazonaws.com/${path}`);
  }
  const accessKeyId = explicitKeys ? options.accessKeyId : chain.accessKeyId;
  const secretAccessKey = explicitKeys ? options.secretAccessKey : chain.secretAccessKey;
  const sessionToken = explicitKeys ? options.sessionToken : chain.sessionToken;
  const sign: Signer = accessKeyId && secretAccessKey
    ? async (method, u, headers) => {
      const signer = new AwsV4Signer({ method, url: u.href, headers, accessKeyId, secretAccessKey, sessionToken, region, service: 's3' });
      const signed = await signer.sign();
      const out: Record<string, string> = {};
      signed.headers.forEach((v, k) => { out[k] = v; });
      return out;
    }
    : async (_method, _u, headers) => headers;
  return { objectUrl, name: `s3://${bucket}/${key}`, sign };
}

/** The text of the first `<TAG>` element of an XML body, or null. */
export function xmlText(body: string, tag: string): string | null {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(body);
  return m ? m[1]!.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&apos;/g, "'").replace(/&amp;/g, '&') : null;
}
