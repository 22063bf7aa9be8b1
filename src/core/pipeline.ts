/**
 * A pipeline: stages in order, ending at a transport. Ingresses drive it through transactions
 * (`begin()`, see `transaction.ts`); it runs the `data` hooks as an onion and is itself a
 * `Transport`, so pipelines nest and can be routed to, and a nested pipeline drives the same kind
 * of transaction as the SMTP listener does. It checks the chain when it is built: shapes, and
 * the order rules (`order.ts`). Its `events` announce every outcome.
 */
import { createEventStream, type DeliveryEvents } from '../delivery/events.js'
import { domainKey } from './address.js'
import { compose, type StageTimings } from './compose.js'
import { RelayError } from './errors.js'
import { stamped } from './hooks.js'
import { checkOrder, combinedDeclarations, MODIFIES_ORDER, SEALS_ORDER } from './order.js'
import { type BeginOptions, beginTransaction, type PipelineTransaction } from './transaction.js'
import type { Address, DeliveryReport, Message, RejectedRecipient, Session, Stage, Transport } from './types.js'

/**
 * Options of {@link createPipeline}.
 *
 * @category Core
 */
export interface PipelineOptions {
  /** The stages, in the order their hooks run. */
  stages?: readonly Stage[]
  /** Where messages go after the last stage. */
  transport: Transport
  /** Name in logs and `describe()`. Default `'pipeline'`. */
  name?: string
  /**
   * Where delivery status notifications for recipients refused after DATA go. Default: the
   * `transport` (the inbound stages do not judge the relay's own bounces).
   */
  notices?: Transport
  /** The event stream to announce outcomes on. Default: a new one, `pipeline.events`. */
  events?: DeliveryEvents
}

/**
 * A chain of stages ending at a transport; itself a transport.
 *
 * @category Core
 */
export interface Pipeline extends Transport {
  /** The stages, in the order their hooks run. */
  readonly stages: readonly Stage[]
  /** Where messages go after the last stage. */
  readonly transport: Transport
  /** True if some stage declares `grantsRelay`: without one, a relay refuses every recipient. */
  readonly grantsRelay: boolean
  /** Every outcome of this pipeline's transactions; see `DeliveryEvent`. */
  readonly events: DeliveryEvents
  /** Opens the transports (a queue takes its directory and starts delivering). */
  open(): Promise<void>
  /** Runs every `connect` hook, in order. Throw to refuse the connection. */
  connect(session: Session): Promise<void>
  /** Starts a transaction for `from`: runs the MAIL hooks, or throws the `SmtpError` refusing the sender. */
  begin(session: Session, from: Address | null, options?: BeginOptions): Promise<PipelineTransaction>
  /** Runs the `data` onion and the transport for a message whose envelope is final (no envelope hooks). */
  deliver(msg: Message, timings?: StageTimings): Promise<DeliveryReport>
  /**
   * As a transport: a transaction of this pipeline for `msg`, with its sender and recipients
   * added one by one (so every hook sees the envelope as it would at a relay; a recipient a hook
   * refuses is reported rejected) and its content taken over. `connect` hooks do not run.
   */
  send(msg: Message): Promise<DeliveryReport>
  /** A printable description of the chain, one line per stage. */
  describe(): string
  /** Waits for notices still being sent (up to `timeout` ms, default 30 000), then closes every stage and the transports. */
  close(options?: { timeout?: number }): Promise<void>
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
 * pipeline.events.subscribe((e) => e.type === 'message-refused' && console.warn(e.id, e.reply))
 * ```
 *
 * @category Core
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const stages = [...(options.stages ?? [])]
  const transport = options.transport
  const name = options.name ?? 'pipeline'
  stages.forEach(validateStage)
  validateTransport(transport)
  if (options.notices) validateTransport(options.notices)
  checkOrder([...stages, transport])
  const onion = compose(stages, (msg) => transport.send(msg), transport.name)
  const withHook = <K extends (typeof HOOKS)[number]>(hook: K) => stages.filter((s) => typeof s[hook] === 'function')
  const connectStages = withHook('connect')
  const events = options.events ?? createEventStream()
  const notices = { transport: options.notices ?? transport, events, pending: new Set<Promise<void>>() }
  // What the transports announce themselves (a queue's deliveries) is this pipeline's news too.
  for (const source of new Set([transport.events, options.notices?.events])) {
    if (source && source !== events) source.subscribe((event) => events.emit(event))
  }
  const chain = { mailStages: withHook('mailFrom'), rcptStages: withHook('rcptTo'), deliver: onion, events, notices }

  const pipeline: Pipeline = {
    name,
    stages,
    transport,
    events,
    grantsRelay: stages.some((s) => s.grantsRelay === true),
    ...combinedDeclarations([...stages, transport]),
    destinationOf: (rcpt, tx) => transport.destinationOf?.(rcpt, tx) ?? domainKey(rcpt.address),

    async open() {
      await transport.open?.()
      if (options.notices && options.notices !== transport) await options.notices.open?.()
    },

    async connect(session) {
      for (const stage of connectStages) await stamped(stage, () => stage.connect!(session))
    },

    begin(session, from, beginOptions) {
      return beginTransaction(chain, session, from, beginOptions)
    },

    deliver(msg, timings = {}) {
      return onion(msg, timings)
    },

    async send(msg) {
      // Inside the caller's transaction: its id, original envelope, state and abort; its outcome
      // is the caller's to announce.
      const tx = await beginTransaction(
        chain,
        msg.session,
        msg.envelope.mailFrom,
        { announce: false, id: msg.id, original: msg.original, state: msg.state, signal: msg.signal },
        msg,
      )
      const refused: RejectedRecipient[] = []
      for (const rcpt of msg.envelope.rcptTo) {
        await tx.addRecipient(rcpt).catch((error: RejectedRecipient['error']) => refused.push({ rcpt, error }))
      }
      if (!tx.envelope.rcptTo.length) return { accepted: [], rejected: refused }
      const outcome = await tx.data({ message: msg })
      // A chain that threw fails the caller's transport call, as any transport's failure does.
      if (!outcome.report) throw outcome.error
      const { response, dsn, queued } = outcome.report
      return {
        accepted: outcome.accepted,
        rejected: [...refused, ...outcome.rejected],
        ...(response ? { response } : {}),
        ...(dsn ? { dsn } : {}),
        ...(queued ? { queued } : {}),
      }
    },

    describe() {
      const lines = [`pipeline ${name}`]
      for (const [i, stage] of stages.entries()) lines.push(`  ${i + 1}. ${describeStage(stage)}`)
      const inner = transport.describe?.() ?? transport.name
      lines.push(`  → ${inner.split('\n').join('\n    ')}`)
      return lines.join('\n')
    },

    async close({ timeout = 30_000 } = {}) {
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout).unref()))
      await Promise.race([Promise.allSettled([...notices.pending]), deadline])
      clearTimeout(timer)
      const closing = [...stages.map((s) => s.close?.()), transport.close?.(), options.notices?.close?.()]
      const results = await Promise.allSettled(closing)
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
    },
  }
  return pipeline
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
