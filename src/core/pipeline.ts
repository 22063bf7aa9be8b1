/**
 * A pipeline: stages in order, ending at a transport. It runs the envelope hooks phase by phase,
 * the `data` hooks as an onion, and is itself a `Transport`, so pipelines nest and can be routed
 * to. It checks the chain when it is built: shapes, and that nothing changes what a signer sealed
 * (after DKIM only new trace fields may be added; after S/MIME the body must not change, except
 * by another S/MIME layer wrapping it whole).
 */
import { compose, type StageTimings } from './compose.js'
import { RelayError, SmtpError, toSmtpError } from './errors.js'
import { MessageImpl } from './message.js'
import type {
  Address,
  DeliveryReport,
  Message,
  Modifies,
  RcptVerdict,
  RejectedRecipient,
  Seals,
  Session,
  Stage,
  Transaction,
  Transport,
} from './types.js'

/** Options of {@link createPipeline}. */
export interface PipelineOptions {
  /** The stages, in the order their hooks run. */
  stages?: readonly Stage[]
  /** Where messages go after the last stage. */
  transport: Transport
  /** Name in logs and `describe()`. Default `'pipeline'`. */
  name?: string
}

/** The outcome of the RCPT hooks for one recipient. */
export interface RcptResult {
  /** What the recipient became: itself, a rewrite, or an expansion. */
  readonly recipients: readonly Address[]
  /** True if a stage that declares `grantsRelay` granted relay permission. */
  readonly relay: boolean
  /** Reasons stages gave, for the log. */
  readonly reasons: readonly string[]
}

/** A chain of stages ending at a transport; itself a transport. */
export interface Pipeline extends Transport {
  readonly stages: readonly Stage[]
  readonly transport: Transport
  /** True if some stage declares `grantsRelay`: without one, a relay refuses every recipient. */
  readonly grantsRelay: boolean
  /** Runs every `connect` hook, in order. */
  connect(session: Session): Promise<void>
  /** Runs every `mailFrom` hook, in order; resolves to the (possibly rewritten) sender. */
  mailFrom(tx: Transaction, from: Address | null): Promise<Address | null>
  /** Runs every `rcptTo` hook for one recipient and each address it expands to. */
  rcptTo(tx: Transaction, to: Address): Promise<RcptResult>
  /** Runs the `data` onion and the transport for a message whose envelope is final. */
  deliver(msg: Message, timings?: StageTimings): Promise<DeliveryReport>
  /**
   * As a transport: runs the envelope hooks over `msg.envelope` (a recipient a hook refuses is
   * reported rejected), then `deliver()`. `connect` hooks do not run for nested pipelines.
   */
  send(msg: Message): Promise<DeliveryReport>
  /** A printable description of the chain, one line per stage. */
  describe(): string
  /** Closes every stage and the transport. */
  close(): Promise<void>
}

const NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/
const HOOKS = ['connect', 'mailFrom', 'rcptTo', 'data', 'close'] as const

/**
 * Builds a pipeline and checks it: throws `RelayError` `ERR_RELAY_INVALID_STAGE` for a malformed
 * stage and `ERR_RELAY_UNSAFE_ORDER` when a stage that modifies the message follows one that seals.
 *
 * @example
 * ```ts
 * const pipeline = createPipeline({
 *   stages: [allowOwnDomains, stripInternalHeaders],
 *   transport: smtpTransport({ host: 'smtp.example.net', port: 587 }),
 * })
 * console.log(pipeline.describe())
 * ```
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const stages = [...(options.stages ?? [])]
  const transport = options.transport
  const name = options.name ?? 'pipeline'
  stages.forEach(validateStage)
  validateTransport(transport)
  checkOrder(stages, transport)
  const onion = compose(stages, (msg) => transport.send(msg), transport.name)
  const withHook = <K extends (typeof HOOKS)[number]>(hook: K) => stages.filter((s) => typeof s[hook] === 'function')
  const connectStages = withHook('connect')
  const mailStages = withHook('mailFrom')
  const rcptStages = withHook('rcptTo')

  const pipeline: Pipeline = {
    name,
    stages,
    transport,
    grantsRelay: stages.some((s) => s.grantsRelay === true),
    modifies: strongest(
      MODIFIES_ORDER,
      [...stages, transport].map((s) => s.modifies),
    ),
    seals: strongest(
      SEALS_ORDER,
      [...stages, transport].map((s) => s.seals),
    ),

    async connect(session) {
      for (const stage of connectStages) await stamped(stage, () => stage.connect!(session))
    },

    async mailFrom(tx, from) {
      let current = from
      for (const stage of mailStages) {
        const result = await stamped(stage, () => stage.mailFrom!(tx, current))
        if (result) current = checkAddress(stage, result)
        setEnvelope(tx, { mailFrom: current, rcptTo: tx.envelope.rcptTo })
      }
      return current
    },

    async rcptTo(tx, to) {
      let current: readonly Address[] = [to]
      let relay = false
      const reasons: string[] = []
      for (const stage of rcptStages) {
        const next: Address[] = []
        for (const rcpt of current) {
          const result = await stamped(stage, () => stage.rcptTo!(tx, rcpt))
          if (!result) next.push(rcpt)
          else if (!isVerdict(result)) next.push(...expansion(stage, result))
          else {
            if (result.reason) reasons.push(`${stage.name}: ${result.reason}`)
            if (result.relay) {
              if (!stage.grantsRelay) {
                throw new RelayError('ERR_RELAY_UNDECLARED_GRANT', `stage "${stage.name}" granted relay without declaring grantsRelay`)
              }
              relay = true
            }
            next.push(...(result.to ? expansion(stage, result.to) : [rcpt]))
          }
        }
        current = next
      }
      return { recipients: current, relay, reasons }
    },

    deliver(msg, timings) {
      return onion(msg, timings)
    },

    async send(msg) {
      const rejected: RejectedRecipient[] = []
      const from = await pipeline.mailFrom(msg, msg.envelope.mailFrom)
      const accepted: Address[] = []
      const originOf = new Map<string, Address>()
      for (const rcpt of msg.envelope.rcptTo) {
        try {
          for (const final of (await pipeline.rcptTo(msg, rcpt)).recipients) {
            if (accepted.some((a) => sameAddress(a, final))) continue
            accepted.push(final)
            originOf.set(final.address.toLowerCase(), rcpt)
          }
        } catch (err) {
          rejected.push({ rcpt, error: toSmtpError(err) })
        }
      }
      if (!accepted.length) return { accepted: [], rejected }
      setEnvelope(msg, { mailFrom: from, rcptTo: accepted })
      const report = await pipeline.deliver(msg)
      return mapBack(report, originOf, rejected)
    },

    describe() {
      const lines = [`pipeline ${name}`]
      for (const [i, stage] of stages.entries()) lines.push(`  ${i + 1}. ${describeStage(stage)}`)
      const inner = transport.describe?.() ?? transport.name
      lines.push(`  → ${inner.split('\n').join('\n    ')}`)
      return lines.join('\n')
    },

    async close() {
      const results = await Promise.allSettled([...stages.map((s) => s.close?.()), transport.close?.()])
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
    },
  }
  return pipeline
}

function isVerdict(value: RcptVerdict | Address | readonly Address[]): value is RcptVerdict {
  return !Array.isArray(value) && !('address' in value)
}

async function stamped<T>(stage: Stage, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof SmtpError && err.stage === undefined) err.stage = stage.name
    throw err
  }
}

function setEnvelope(tx: Transaction, envelope: MessageImpl['envelope']): void {
  if (!(tx instanceof MessageImpl)) throw new RelayError('ERR_RELAY_INVALID_STAGE', 'transaction not created by relaychain')
  tx.setEnvelope(envelope)
}

/** Case-insensitive address equality, as mail systems dedupe recipients. */
export function sameAddress(a: Address, b: Address): boolean {
  return a.address.toLowerCase() === b.address.toLowerCase()
}

function checkAddress(stage: Stage, value: unknown): Address {
  const address = (value as Address | null)?.address
  if (typeof address !== 'string' || !address || /[\s<>]/.test(address)) {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}" returned an invalid address ${JSON.stringify(value)}`)
  }
  return value as Address
}

function expansion(stage: Stage, value: Address | readonly Address[]): Address[] {
  const list = Array.isArray(value) ? (value as readonly Address[]) : [value as Address]
  // An empty expansion would accept a recipient and deliver it nowhere.
  if (!list.length) throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}" expanded a recipient to nothing`)
  return list.map((a) => checkAddress(stage, a))
}

/** Reports in terms of the recipients the caller passed: accepted only if all expansions were. */
function mapBack(report: DeliveryReport, originOf: Map<string, Address>, rejected: RejectedRecipient[]): DeliveryReport {
  const failed = new Map<Address, RejectedRecipient>()
  for (const r of report.rejected) {
    const origin = originOf.get(r.rcpt.address.toLowerCase()) ?? r.rcpt
    if (!failed.has(origin)) failed.set(origin, { rcpt: origin, error: r.error })
  }
  const accepted = [...new Set([...originOf.values()])].filter((o) => !failed.has(o))
  return { accepted, rejected: [...rejected, ...failed.values()], ...(report.response ? { response: report.response } : {}) }
}

function describeStage(stage: Stage): string {
  const hooks = HOOKS.filter((h) => h !== 'close' && typeof stage[h] === 'function').join(',')
  const traits = [stage.modifies && `modifies ${stage.modifies}`, stage.seals && `seals ${stage.seals}`, stage.grantsRelay && 'grants relay']
  return [stage.name.padEnd(20), `[${hooks}]`, ...traits.filter(Boolean)].join(' ')
}

function validateStage(stage: Stage, index: number): void {
  const where = `stage ${index + 1}`
  if (!stage || typeof stage !== 'object') throw new RelayError('ERR_RELAY_INVALID_STAGE', `${where} is not an object`)
  if (typeof stage.name !== 'string' || !NAME.test(stage.name)) {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', `${where} needs a kebab-case name, got ${JSON.stringify(stage.name)}`)
  }
  for (const hook of HOOKS) {
    if (stage[hook] !== undefined && typeof stage[hook] !== 'function') {
      throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}": ${hook} must be a function`)
    }
  }
  if (stage.modifies !== undefined && !MODIFIES_ORDER.includes(stage.modifies)) {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}": modifies must be one of ${MODIFIES_ORDER.join(', ')}`)
  }
  if (stage.seals !== undefined && !SEALS_ORDER.includes(stage.seals)) {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}": seals must be one of ${SEALS_ORDER.join(', ')}`)
  }
}

function validateTransport(transport: Transport): void {
  if (!transport || typeof transport.send !== 'function' || typeof transport.name !== 'string') {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', 'the transport needs a name and a send(msg) function')
  }
}

/** Weakest first. */
export const MODIFIES_ORDER: readonly Modifies[] = ['trace', 'headers', 'body']
export const SEALS_ORDER: readonly Seals[] = ['body', 'message']
/** The most a seal still allows to change after it. */
const ALLOWED_AFTER: Record<Seals, Modifies> = { body: 'headers', message: 'trace' }

/** The strongest of several declarations, e.g. what a whole nested pipeline may modify. */
export function strongest<T extends string>(order: readonly T[], values: ReadonlyArray<T | undefined>): T | undefined {
  let rank = -1
  for (const value of values) if (value !== undefined) rank = Math.max(rank, order.indexOf(value))
  return rank < 0 ? undefined : order[rank]
}

function checkOrder(stages: readonly Stage[], transport: Transport): void {
  let seal: { by: string; what: Seals } | undefined
  for (const item of [...stages, transport] as ReadonlyArray<{ name: string; modifies?: Modifies; seals?: Seals }>) {
    // An S/MIME layer after another wraps the sealed entity whole (sign, then encrypt): it changes
    // the body, but not what the earlier layer signed.
    const wraps = seal?.what === 'body' && item.seals === 'body'
    if (item.modifies && seal && !wraps && MODIFIES_ORDER.indexOf(item.modifies) > MODIFIES_ORDER.indexOf(ALLOWED_AFTER[seal.what])) {
      throw new RelayError(
        'ERR_RELAY_UNSAFE_ORDER',
        `"${item.name}" modifies the message (${item.modifies}) after "${seal.by}" sealed its ${seal.what}; move it before "${seal.by}"`,
      )
    }
    if (item.seals && (!seal || SEALS_ORDER.indexOf(item.seals) > SEALS_ORDER.indexOf(seal.what))) seal = { by: item.name, what: item.seals }
  }
}
