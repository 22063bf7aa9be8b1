/**
 * The certificates of a listener: a default one, more by server name (SNI), read from memory or
 * from files, checked when the relay is built (a key that does not match its certificate is a
 * `RelayError`, not a failed handshake later), and replaceable while the relay runs: `update()`
 * swaps every context at once, so handshakes in progress and established sessions keep the
 * certificate they started with, and the next handshake gets the new one. With `watch`, files
 * are polled and re-read when they change; a set that does not load (a key written before its
 * certificate, mid-rotation) is logged and the previous one kept until the next change.
 *
 * Defaults follow current Postfix (3.11: `smtpd_tls_protocols = >=TLSv1`, `smtpd_tls_ciphers =
 * medium`): on port 25 any encryption beats none. OpenSSL 3, which Node 20 and later use, still
 * refuses TLS 1.0 and 1.1 at its default security level, as it does for Postfix.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import { createSecureContext, type SecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls'
import { domainToASCII } from 'node:url'
import { RelayError } from '../../core/errors.js'
import { type Duration, toMs } from '../../shared/duration.js'
import type { Logger } from '../../shared/logger.js'

/**
 * Postfix's `medium` cipher grade (`tls_medium_cipherlist` of Postfix 3.8 to 3.12), the default
 * `ciphers` of the relay's listeners; extend it rather than start from nothing.
 *
 * @example
 * ```ts
 * createRelay({ stages, transport, tls: { key, cert, ciphers: `${POSTFIX_MEDIUM_CIPHERS}:!SHA1` } })
 * ```
 *
 * @category Relay
 */
export const POSTFIX_MEDIUM_CIPHERS = 'aNULL:-aNULL:HIGH:MEDIUM:!SEED:!IDEA:!3DES:!RC2:!RC4:!RC5:!kDH:!kECDH:!aDSS:!MD5:+RC4:@STRENGTH'
/** Postfix's `smtpd_tls_protocols = >=TLSv1`, the default `minVersion`. */
export const POSTFIX_MIN_VERSION: SecureVersion = 'TLSv1'

/**
 * A certificate and its key, in memory (`key`, `cert`, PEM) or as files (`keyFile`, `certFile`), re-read on reload.
 *
 * @category Relay
 */
export interface TlsCertificate extends Pick<SecureContextOptions, 'key' | 'cert' | 'ca' | 'pfx' | 'passphrase'> {
  /** PEM private key file, instead of `key`. */
  keyFile?: string
  /** PEM certificate (chain) file, instead of `cert`. */
  certFile?: string
  /** PEM file of CA certificates, instead of `ca`. */
  caFile?: string
}

/**
 * TLS for STARTTLS and implicit-TLS listeners. Without it, STARTTLS is not offered.
 *
 * @category Relay
 */
export interface RelayTlsOptions extends TlsCertificate, Pick<SecureContextOptions, 'maxVersion' | 'ecdhCurve' | 'dhparam'> {
  /** Lowest protocol version. Default `'TLSv1'`, as Postfix (`smtpd_tls_protocols = >=TLSv1`). */
  minVersion?: SecureVersion
  /** OpenSSL cipher list for TLS 1.2 and below. Default Postfix's `medium` grade ({@link POSTFIX_MEDIUM_CIPHERS}). */
  ciphers?: string
  /**
   * Certificates by the server name a client asks for (SNI): `mail.example.com`, or
   * `*.example.com` for one label under it. Names no entry matches get the default certificate.
   */
  sni?: Readonly<Record<string, TlsCertificate>>
  /**
   * Re-read the `*File` entries when they change (polled, every 5 s by default, or `interval`),
   * without dropping connections. Default false; `relay.updateTls()` reloads on demand.
   */
  watch?:
    | boolean
    | {
        /** How often the files are polled. Default 5 s. */
        interval?: Duration
      }
}

/** What smtp-server is given for its default context. */
export type DefaultContextOptions = SecureContextOptions & { minVersion: SecureVersion; ciphers: string }

const read = (file: string, what: string): Buffer => {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      cause: err,
    })
  }
}

/** The context options of one certificate, with its files read now. */
function resolve(cert: TlsCertificate, common: SecureContextOptions, what: string): SecureContextOptions {
  const { keyFile, certFile, caFile, key, cert: chain, ca, pfx, passphrase } = cert
  if (!(keyFile || key || pfx) || !(certFile || chain || pfx))
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: needs a key and a certificate`)
  return {
    ...common,
    key: keyFile ? read(keyFile, what) : key,
    cert: certFile ? read(certFile, what) : chain,
    ca: caFile ? read(caFile, what) : ca,
    pfx,
    passphrase,
  }
}

/** A context, or a `RelayError` that names what failed (never key material). */
function context(options: SecureContextOptions, what: string): SecureContext {
  try {
    return createSecureContext(options)
  } catch (err) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: ${(err as Error).message}`, { cause: err })
  }
}

interface Loaded {
  defaults: DefaultContextOptions
  byName: Map<string, SecureContext>
  files: string[]
}

function load(options: RelayTlsOptions, what: string): Loaded {
  const common: DefaultContextOptions = {
    minVersion: options.minVersion ?? POSTFIX_MIN_VERSION,
    maxVersion: options.maxVersion,
    ciphers: options.ciphers ?? POSTFIX_MEDIUM_CIPHERS,
    ecdhCurve: options.ecdhCurve,
    dhparam: options.dhparam,
  }
  const defaults = resolve(options, common, what) as DefaultContextOptions
  context(defaults, what)
  const byName = new Map<string, SecureContext>()
  for (const [name, cert] of Object.entries(options.sni ?? {})) {
    const key = name.trim().toLowerCase().replace(/\.$/, '')
    if (!/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(key))
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: bad SNI name ${JSON.stringify(name)}`)
    byName.set(key, context(resolve(cert, common, `${what} sni ${key}`), `${what} sni ${key}`))
  }
  const certificates = [options, ...Object.values(options.sni ?? {})]
  const files = certificates.flatMap((c) => [c.keyFile, c.certFile, c.caFile]).filter((f): f is string => typeof f === 'string')
  return { defaults, byName, files }
}

/** One listener's (or the relay's) certificates; see the file header. */
export class TlsContexts {
  readonly label: string
  #options: RelayTlsOptions
  #loaded: Loaded
  #watched: string[] = []
  readonly #onChange = () => this.#scheduleReload()
  #timer: NodeJS.Timeout | undefined
  #appliers = new Set<(defaults: DefaultContextOptions) => void>()
  #logger: Logger | undefined

  /** Loads now; throws `ERR_RELAY_INVALID_OPTION` for a missing file, a bad key or a mismatched pair. */
  constructor(options: RelayTlsOptions, label: string) {
    this.label = label
    this.#options = options
    this.#loaded = load(options, label)
  }

  /** The options for smtp-server's default context (the certificate for clients without SNI or an unknown name). */
  get defaults(): DefaultContextOptions {
    return this.#loaded.defaults
  }

  /** The context for a server name a client asked for, or undefined for the default. */
  lookup(servername: string): SecureContext | undefined {
    // smtp-server hands over the name in Unicode; the table is keyed by A-labels.
    const name = (domainToASCII(servername) || servername).toLowerCase().replace(/\.$/, '')
    const { byName } = this.#loaded
    const dot = name.indexOf('.')
    return byName.get(name) ?? (dot > 0 ? byName.get(`*.${name.slice(dot + 1)}`) : undefined)
  }

  /** Called with the new default options after every successful (re)load; returns an unsubscribe. */
  onUpdate(apply: (defaults: DefaultContextOptions) => void): () => void {
    this.#appliers.add(apply)
    return () => this.#appliers.delete(apply)
  }

  /** Replaces the options (or re-reads the same files) and applies them; throws, keeping the old set, if they do not load. */
  update(options: RelayTlsOptions = this.#options): void {
    const loaded = load(options, this.label)
    const watching = this.#watched.length > 0
    this.#options = options
    this.#loaded = loaded
    for (const apply of this.#appliers) apply(loaded.defaults)
    if (watching) this.watch(this.#logger)
  }

  /** Starts polling the files, if the options ask for it. */
  watch(logger: Logger | undefined): void {
    this.unwatch()
    this.#logger = logger
    const { watch } = this.#options
    if (!watch) return
    const interval = typeof watch === 'object' && watch.interval !== undefined ? toMs(watch.interval, 'tls.watch.interval') : 5000
    for (const file of new Set(this.#loaded.files)) {
      watchFile(file, { interval, persistent: false }, this.#onChange)
      this.#watched.push(file)
    }
  }

  /** Stops polling. */
  unwatch(): void {
    for (const file of this.#watched) unwatchFile(file, this.#onChange)
    this.#watched = []
    clearTimeout(this.#timer)
  }

  /** A key and a certificate often change a moment apart: reload once both settled. */
  #scheduleReload(): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      try {
        this.update()
        this.#logger?.info({ tls: this.label }, 'TLS certificates reloaded')
      } catch (err) {
        this.#logger?.error({ tls: this.label, err }, 'TLS certificates could not be reloaded; keeping the previous ones')
      }
    }, 200).unref()
  }
}
