/**
 * The `data` onion, after koa-compose: stage i runs, calls `next()`, stage i+1 runs … the last
 * `next()` calls the transport; each stage sees the report on the way back. A stage that splits a
 * message (S/MIME: encrypted for some recipients, not for others) passes forks instead, one
 * `next(fork)` per group. Contract checks are always on because each one protects a reply: passing
 * a recipient on twice would deliver twice, and a stage that resolves before its downstream
 * settled would let the relay answer 250 early.
 */
import { RelayError, SmtpError } from './errors.js'
import { abortReasonOf } from './message.js'
import type { DeliveryReport, Message, Stage } from './types.js'

/**
 * Milliseconds each stage spent in its own code (downstream time excluded), by name.
 *
 * @category Core
 */
export type StageTimings = Record<string, number>

type Terminal = (msg: Message) => Promise<DeliveryReport>

/** Composes the `data` hooks of `stages` around `terminal`. */
export function compose(stages: readonly Stage[], terminal: Terminal, terminalName: string) {
  const chain = stages.filter((s) => typeof s.data === 'function')
  return function run(message: Message, timings: StageTimings = {}): Promise<DeliveryReport> {
    // Keys in chain order, so a log line reads top to bottom.
    for (const name of [...chain.map((s) => s.name), terminalName]) timings[name] ??= 0
    const dispatch = async (i: number, msg: Message): Promise<DeliveryReport> => {
      const stage = chain[i]
      const name = stage ? stage.name : terminalName
      const started = performance.now()
      let downstream = 0
      try {
        if (!stage) {
          // The client left (or the reply time ran out) while the stages worked: forward nothing.
          const aborted = abortReasonOf(msg)
          if (aborted !== undefined) throw aborted
          return await terminal(msg)
        }
        let whole = false
        let forked: Set<string> | undefined // recipients passed on in forks
        let pending = 0
        const next = async (part: Message = msg): Promise<DeliveryReport> => {
          const fork = part !== msg
          const keys = fork ? part.envelope.rcptTo.map((r) => r.address.toLowerCase()) : []
          if (whole || (fork ? keys.some((k) => forked?.has(k)) : forked)) {
            throw new RelayError('ERR_RELAY_NEXT_CALLED_TWICE', `stage "${name}" called next() twice for the same recipients`)
          }
          if (fork) for (const k of keys) (forked ??= new Set()).add(k)
          else whole = true
          pending++
          const t = performance.now()
          try {
            return await dispatch(i + 1, part)
          } finally {
            pending--
            downstream += performance.now() - t
          }
        }
        const report = await stage.data!(msg, next)
        if (pending) {
          throw new RelayError('ERR_RELAY_NEXT_NOT_AWAITED', `stage "${name}" resolved before the next() it called settled`)
        }
        if (!report || !Array.isArray(report.accepted) || !Array.isArray(report.rejected)) {
          throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${name}" did not return a DeliveryReport`)
        }
        return report
      } catch (err) {
        if (err instanceof SmtpError && err.stage === undefined) err.stage = name
        throw err
      } finally {
        timings[name] = (timings[name] ?? 0) + performance.now() - started - downstream
      }
    }
    return dispatch(0, message)
  }
}
