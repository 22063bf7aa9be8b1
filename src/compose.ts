/**
 * The `data` onion, after koa-compose: stage i runs, calls `next()`, stage i+1 runs … the last
 * `next()` calls the transport; each stage sees the report on the way back. Contract checks are
 * always on because each one protects a reply: a second `next()` would deliver twice, and a
 * stage that resolves before its downstream settled would let the relay answer 250 early.
 */
import { RelayError, SmtpError } from './errors.js'
import type { DeliveryReport, Message, Stage } from './types.js'

/** Milliseconds each stage spent in its own code (downstream time excluded), by name. */
export type StageTimings = Record<string, number>

type Terminal = (msg: Message) => Promise<DeliveryReport>

/** Composes the `data` hooks of `stages` around `terminal`. */
export function compose(stages: readonly Stage[], terminal: Terminal, terminalName: string) {
  const chain = stages.filter((s) => typeof s.data === 'function')
  return function run(msg: Message, timings: StageTimings = {}): Promise<DeliveryReport> {
    // Keys in chain order, so a log line reads top to bottom.
    for (const name of [...chain.map((s) => s.name), terminalName]) timings[name] ??= 0
    const dispatch = async (i: number): Promise<DeliveryReport> => {
      const stage = chain[i]
      const name = stage ? stage.name : terminalName
      const started = performance.now()
      let downstream = 0
      try {
        if (!stage) return await terminal(msg)
        let called = false
        let settled = false
        const next = async (): Promise<DeliveryReport> => {
          if (called) throw new RelayError('ERR_RELAY_NEXT_CALLED_TWICE', `stage "${name}" called next() twice`)
          called = true
          const t = performance.now()
          try {
            return await dispatch(i + 1)
          } finally {
            settled = true
            downstream = performance.now() - t
          }
        }
        const report = await stage.data!(msg, next)
        if (called && !settled) {
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
    return dispatch(0)
  }
}
