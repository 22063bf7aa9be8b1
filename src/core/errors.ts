/**
 * The two error classes of relaychain.
 *
 * `SmtpError` is an answer for the SMTP client: a basic code, an enhanced status code (RFC 3463)
 * and generic text. Stages throw it to refuse something; the relay writes it on the wire as is.
 * Internal detail (which rule fired, what the scanner said) goes into `reason` and `cause`, which
 * are logged and never sent.
 *
 * `RelayError` is a programming or configuration mistake with a stable `ERR_RELAY_*` code. It is
 * thrown when a chain is built (or, for contract violations such as a second `next()` call, at
 * run time) and is never shown to an SMTP client: the client sees `451 4.3.0` instead.
 */

/**
 * An RFC 3463 enhanced status code such as `5.7.1`.
 *
 * @category Errors
 */
export type EnhancedCode = `${2 | 4 | 5}.${number}.${number}`

/**
 * Options of {@link SmtpError} beyond the wire reply.
 *
 * @category Errors
 */
export interface SmtpErrorOptions {
  /** Internal detail for logs; never sent to the client. */
  reason?: string
  /** The underlying error, if any; never sent to the client. */
  cause?: unknown
}

const SMTP_ERROR = Symbol.for('relaychain.SmtpError')
const RELAY_ERROR = Symbol.for('relaychain.RelayError')

function branded(value: unknown, brand: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true
}

/**
 * A refusal the SMTP client sees, as `code enhanced response`.
 *
 * @example
 * ```ts
 * throw new SmtpError(550, '5.7.1', 'Message rejected by policy', { reason: 'blocked attachment type .exe' })
 * ```
 *
 * @category Errors
 */
export class SmtpError extends Error {
  readonly #code: number
  readonly #enhanced: EnhancedCode
  readonly #response: string
  /** Internal detail for logs. */
  readonly reason: string | undefined
  /** Name of the stage that threw it; stamped by the pipeline. */
  stage: string | undefined

  constructor(code: number, enhanced: EnhancedCode, response: string, options: SmtpErrorOptions = {}) {
    if (!Number.isInteger(code) || code < 400 || code > 599) {
      throw new RelayError('ERR_RELAY_INVALID_REPLY', `SMTP error code must be 400-599, got ${code}`)
    }
    if (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced) || enhanced[0] !== String(code)[0]) {
      throw new RelayError('ERR_RELAY_INVALID_REPLY', `enhanced code ${enhanced} does not match ${code}`)
    }
    super(`${code} ${enhanced} ${response}`, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SmtpError'
    this.#code = code
    this.#enhanced = enhanced
    // A reply is one line: a CR or LF here would let text split the SMTP response.
    this.#response = response.replace(/[\r\n\x00-\x1f\x7f]+/g, ' ').trim()
    this.reason = options.reason
    this.stage = undefined
  }

  /** RFC 5321 reply code, 400–599. */
  get code(): number {
    return this.#code
  }

  /** RFC 3463 enhanced status code; its class always matches `code`. */
  get enhanced(): EnhancedCode {
    return this.#enhanced
  }

  /** Text for the client: generic, one line, never policy internals. */
  get response(): string {
    return this.#response
  }

  /** True for 4xx replies: the client should try again later. */
  get temporary(): boolean {
    return this.code < 500
  }

  /** The reply line as the client sees it, e.g. `554 5.7.1 Relay access denied`. */
  toReply(): string {
    return `${this.code} ${this.enhanced} ${this.response}`
  }

  /** True for an `SmtpError` from any copy of relaychain (ESM and CJS builds, two installed versions). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return branded(value, SMTP_ERROR)
  }
}
Object.defineProperty(SmtpError.prototype, SMTP_ERROR, { value: true })
// The reply is fixed at construction. Libraries that pass errors along write to them (nodemailer
// sets `err.code = 'ESTREAM'` on a stream's error), so writes are ignored rather than thrown:
// a throw inside their error handler would crash the process.
for (const key of ['code', 'enhanced', 'response'] as const) {
  const { get } = Object.getOwnPropertyDescriptor(SmtpError.prototype, key)!
  Object.defineProperty(SmtpError.prototype, key, { get, set() {}, configurable: true, enumerable: false })
}

/**
 * Named constructors for the refusals stages use most. Prefer them to bare numbers so that the
 * same situation always gets the same reply.
 *
 * @example
 * ```ts
 * if (!allowed) throw reject.noRelay('client 192.0.2.7 not in allowlist')
 * ```
 *
 * @category Errors
 */
export const reject = {
  /** `550 5.7.1` — refused by policy (content, sender, attachment rules). */
  policy: (reason?: string) => new SmtpError(550, '5.7.1', 'Message rejected due to local policy', { reason }),
  /** `554 5.7.1` — refused at connect time. */
  connection: (reason?: string) => new SmtpError(554, '5.7.1', 'Connection refused', { reason }),
  /** `554 5.7.1` — this relay is not allowed to relay to that recipient. */
  noRelay: (reason?: string) => new SmtpError(554, '5.7.1', 'Relay access denied', { reason }),
  /** `552 5.3.4` — the message is larger than the relay accepts. */
  tooBig: (limit?: number) => new SmtpError(552, '5.3.4', limit ? `Message size exceeds fixed limit of ${limit} bytes` : 'Message too big', {}),
  /** `452 4.5.3` — too many recipients for one message. */
  tooManyRecipients: () => new SmtpError(452, '4.5.3', 'Too many recipients'),
  /** `550 5.5.2` — bare CR or LF in the message (RFC 5321 §2.3.8; SMTP smuggling defence). */
  bareLineEnding: () => new SmtpError(550, '5.5.2', 'Message refused: bare CR or LF line ending (RFC 5321 section 2.3.8)'),
  /** `451 4.3.0` — a temporary local problem; the client should retry. */
  tempFail: (cause?: unknown, reason?: string) => new SmtpError(451, '4.3.0', 'Temporary local problem, please try again later', { cause, reason }),
  /** `421 4.3.2` — the relay is shutting down or overloaded; the connection closes. */
  unavailable: (reason?: string) => new SmtpError(421, '4.3.2', 'Service not available, try again later', { reason }),
} as const

/**
 * Turns anything thrown into an `SmtpError`. An `SmtpError` passes through; anything else becomes
 * `451 4.3.0` with the original as `cause`, so an unexpected failure makes the client retry
 * instead of bouncing the message.
 *
 * @example
 * ```ts
 * try { await scanner(input) } catch (err) { throw toSmtpError(err) } // 451 4.3.0 unless it was an SmtpError
 * ```
 *
 * @category Errors
 */
export function toSmtpError(err: unknown): SmtpError {
  if (err instanceof SmtpError) return err
  return reject.tempFail(err, err instanceof Error ? err.message : String(err))
}

/**
 * Stable codes of {@link RelayError}.
 *
 * @category Errors
 */
export const RelayErrorCode = {
  /** A stage or transport object does not have the required shape. */
  ERR_RELAY_INVALID_STAGE: 'ERR_RELAY_INVALID_STAGE',
  /** A stage that modifies the message comes after one that seals it. */
  ERR_RELAY_UNSAFE_ORDER: 'ERR_RELAY_UNSAFE_ORDER',
  /** A stage called `next()` twice. */
  ERR_RELAY_NEXT_CALLED_TWICE: 'ERR_RELAY_NEXT_CALLED_TWICE',
  /** A stage resolved before the downstream `next()` it started had settled. */
  ERR_RELAY_NEXT_NOT_AWAITED: 'ERR_RELAY_NEXT_NOT_AWAITED',
  /** A stage granted relay permission without declaring `grantsRelay`. */
  ERR_RELAY_UNDECLARED_GRANT: 'ERR_RELAY_UNDECLARED_GRANT',
  /** A transaction's methods were called out of order (a recipient after data(), data() twice or without recipients). */
  ERR_RELAY_TRANSACTION_STATE: 'ERR_RELAY_TRANSACTION_STATE',
  /** The message body was read twice without being spooled. */
  ERR_RELAY_BODY_CONSUMED: 'ERR_RELAY_BODY_CONSUMED',
  /** Invalid options passed to a factory. */
  ERR_RELAY_INVALID_OPTION: 'ERR_RELAY_INVALID_OPTION',
  /** An `SmtpError` built with an impossible code. */
  ERR_RELAY_INVALID_REPLY: 'ERR_RELAY_INVALID_REPLY',
  /** A transport's report does not account for every recipient. */
  ERR_RELAY_INVALID_REPORT: 'ERR_RELAY_INVALID_REPORT',
  /** A listener could not bind its address (port in use, no permission, address not local). */
  ERR_RELAY_LISTEN: 'ERR_RELAY_LISTEN',
  /** A queue directory is in use by another process (one relay process per queue directory). */
  ERR_RELAY_QUEUE_LOCKED: 'ERR_RELAY_QUEUE_LOCKED',
  /** The installed smtp-server is not the code relaychain's adapter was written against. */
  ERR_RELAY_INCOMPATIBLE_SERVER: 'ERR_RELAY_INCOMPATIBLE_SERVER',
  /** A feature was used without its optional peer dependency installed; the message names the `npm install` command. */
  ERR_RELAY_MISSING_DEPENDENCY: 'ERR_RELAY_MISSING_DEPENDENCY',
  /** The database schema is newer than this version of relaychain knows. */
  ERR_RELAY_SCHEMA_VERSION: 'ERR_RELAY_SCHEMA_VERSION',
} as const

/**
 * One of the {@link RelayErrorCode} values.
 *
 * @category Errors
 */
export type RelayErrorCode = (typeof RelayErrorCode)[keyof typeof RelayErrorCode]

/**
 * A programming or configuration mistake. Never shown to SMTP clients.
 *
 * @example
 * ```ts
 * try { createPipeline({ stages: [dkim, disclaimer], transport }) }
 * catch (err) { if (err instanceof RelayError && err.code === 'ERR_RELAY_UNSAFE_ORDER') … }
 * ```
 *
 * @category Errors
 */
export class RelayError extends Error {
  /** What went wrong, as a stable code to branch on (see {@link RelayErrorCode}). */
  readonly code: RelayErrorCode

  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RelayError'
    this.code = code
  }

  /** True for a `RelayError` from any copy of relaychain (ESM and CJS builds, two installed versions). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return branded(value, RELAY_ERROR)
  }
}
Object.defineProperty(RelayError.prototype, RELAY_ERROR, { value: true })
