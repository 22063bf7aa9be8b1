/**
 * The one HTTPS client of direct MX delivery: MTA-STS policy fetches (RFC 8461 §3.3) and TLS-RPT
 * reports posted to an `https:` `rua` (RFC 8460 §5.2). Both go to hosts the recipient domain names,
 * so the same rules as for its MX hosts apply: the name is resolved through the transport's own
 * DNS resolver (no lookup through the system resolver, none that leaves a test machine), and only
 * addresses the address gate allows are connected to.
 *
 * The certificate must be valid for the host name and chain to a trusted root (Node's roots plus
 * the `ca` given). Redirects are never followed (RFC 8461 §3.3): the caller sees the 3xx status.
 * The body is read up to `maxBytes` and the whole exchange, connection included, is bounded by
 * `timeout`. Addresses are tried in turn until one connects.
 */
import { request } from 'node:https'
import { isIP } from 'node:net'
import { rootCertificates } from 'node:tls'
import type { AddressGate } from './address-policy.js'
import type { DnsResolver } from './dns-types.js'
import { resolveHost } from './mx-walk.js'

/**
 * Trust for HTTPS and SMTP certificates: extra CA certificates (PEM) besides Node's roots.
 *
 * @category Transports
 */
export type ExtraCa = string | Buffer | ReadonlyArray<string | Buffer>

/**
 * Node's roots plus `extra`, or undefined (Node's roots) when there is no extra CA.
 *
 * @example
 * ```ts
 * https.request({ host, ca: trustedCas(readFileSync('/etc/relay/internal-ca.pem')) })
 * ```
 */
export function trustedCas(extra: ExtraCa | undefined): (string | Buffer)[] | undefined {
  if (extra === undefined) return undefined
  return [...rootCertificates, ...(Array.isArray(extra) ? extra : [extra as string | Buffer])]
}

/** What {@link httpsRequest} needs. */
export interface HttpsRequestOptions {
  readonly url: URL
  readonly method: 'GET' | 'POST'
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: Buffer
  readonly dns: DnsResolver
  readonly gate: AddressGate
  readonly ca?: (string | Buffer)[] | undefined
  /** Overrides the URL's port (tests, and MTA-STS hosts on a non-standard port). */
  readonly port?: number | undefined
  /** Milliseconds for the whole exchange. */
  readonly timeout: number
  /** Response bodies larger than this are an error. */
  readonly maxBytes: number
}

/** An HTTPS response. */
export interface HttpsResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: Buffer
}

/** An HTTPS request that failed, with a code saying where: `dns`, `address`, `tls`, `network`, `timeout`, `too-large`. */
export class HttpsRequestError extends Error {
  readonly code: 'dns' | 'address' | 'tls' | 'network' | 'timeout' | 'too-large'
  constructor(code: HttpsRequestError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HttpsRequestError'
    this.code = code
  }
}

const TLS_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|ERR_SSL|ERR_TLS|EPROTO/

/** The addresses to connect to for the URL's host (an IP literal is used as it is). */
async function addressesOf(options: HttpsRequestOptions): Promise<string[]> {
  const host = options.url.hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  if (isIP(host)) addresses = [host]
  else {
    const found = await resolveHost(options.dns, host, true)
    if (!found.addresses.length) throw new HttpsRequestError('dns', `${host}: ${found.error?.message ?? 'no address'}`, { cause: found.error })
    addresses = [...found.addresses]
  }
  const allowed = addresses.filter(options.gate)
  if (!allowed.length) throw new HttpsRequestError('address', `${host}: ${addresses.join(', ')} not allowed (loopback, private or reserved)`)
  return allowed
}

function once(options: HttpsRequestOptions, address: string, deadline: number): Promise<HttpsResponse> {
  const { url } = options
  const port = options.port ?? (url.port ? Number(url.port) : 443)
  return new Promise((resolve, reject) => {
    const req = request({
      host: address,
      servername: isIP(url.hostname.replace(/^\[|\]$/g, '')) ? undefined : url.hostname,
      port,
      path: `${url.pathname}${url.search}`,
      method: options.method,
      headers: {
        host: port === 443 ? url.hostname : `${url.hostname}:${port}`,
        ...options.headers,
        ...(options.body ? { 'content-length': String(options.body.length) } : {}),
      },
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: true,
      agent: false,
    })
    const timer = setTimeout(
      () => req.destroy(new HttpsRequestError('timeout', `no answer within ${options.timeout} ms`)),
      Math.max(1, deadline - Date.now()),
    )
    const fail = (err: unknown) => {
      clearTimeout(timer)
      if (err instanceof HttpsRequestError) return reject(err)
      const code = String((err as { code?: unknown }).code ?? '')
      reject(new HttpsRequestError(TLS_ERROR.test(code) ? 'tls' : 'network', `${address}: ${code || (err as Error).message}`, { cause: err }))
    }
    req.once('error', fail)
    req.once('response', (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > options.maxBytes) req.destroy(new HttpsRequestError('too-large', `response larger than ${options.maxBytes} bytes`))
        else chunks.push(chunk)
      })
      res.once('error', fail)
      res.once('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
      })
    })
    req.end(options.body)
  })
}

/**
 * Sends one HTTPS request (see the file header). Rejects with an {@link HttpsRequestError}.
 *
 * @example
 * ```ts
 * const res = await httpsRequest({ url: new URL('https://mta-sts.example.org/.well-known/mta-sts.txt'), method: 'GET',
 *   dns, gate: addressGate(), timeout: 15_000, maxBytes: 65_536 })
 * ```
 */
export async function httpsRequest(options: HttpsRequestOptions): Promise<HttpsResponse> {
  const deadline = Date.now() + options.timeout
  const addresses = await addressesOf(options)
  let last: unknown
  for (const address of addresses) {
    try {
      return await once(options, address, deadline)
    } catch (err) {
      last = err
      // A certificate or a server that answered slowly is the same at the next address.
      if (!(err instanceof HttpsRequestError) || err.code !== 'network' || Date.now() >= deadline) break
    }
  }
  throw last
}
