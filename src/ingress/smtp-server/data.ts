/**
 * The DATA phase of the relay: guard the incoming bytes (size, bare line endings), split off the
 * header section, add the trace field, run the chain and turn its report into the one reply the
 * client gets. Whatever happens, the client's stream is drained so the session stays in step,
 * and the message's temp files are removed.
 */
import { Readable } from 'node:stream'
import type { SMTPServerDataStream } from 'smtp-server'
import { HeaderBlock } from '../../core/body/header-block.js'
import type { BareLineEndingPolicy } from '../../core/body/line-endings.js'
import type { SpoolOptions } from '../../core/body/spool.js'
import type { StageTimings } from '../../core/compose.js'
import { reject, SmtpError, toSmtpError } from '../../core/errors.js'
import { MessageImpl } from '../../core/message.js'
import type { Pipeline } from '../../core/pipeline.js'
import type { Address, DeliveryReport, RejectedRecipient } from '../../core/types.js'
import { buildDsn, type FailedRecipient } from '../../delivery/dsn.js'
import type { Logger } from '../../shared/logger.js'
import { IngressStream } from './ingress-stream.js'
import { receivedValue, type TraceMode } from './received.js'
import type { SessionView } from './session.js'

/** What the DATA phase needs from the relay. */
export interface DataContext {
  pipeline: Pipeline
  hostname: string
  logger: Logger
  /** Reports an error on our side (logged at error, passed to the relay's `onError`). */
  unexpected(err: unknown, fields: Record<string, unknown>, message: string): void
  /** Warns (once per reason every few minutes) that the next hop did not answer. */
  nextHopDown(failure: SmtpError): void
  /** Milliseconds the chain may take after the final dot; see `RelayLimits.replyTimeout`. */
  replyTimeout: number
  maxSize: number
  maxHeaderSize: number
  bareLineEndings: BareLineEndingPolicy
  trace: TraceMode
  spool: SpoolOptions
}

/**
 * Receives one message and delivers it through the chain. Resolves with the text of the 250
 * reply; rejects with the `SmtpError` to answer.
 */
export async function receiveMessage(
  stream: SMTPServerDataStream,
  tx: MessageImpl,
  session: SessionView,
  origins: ReadonlyMap<string, Address>,
  ctx: DataContext & { left: AbortSignal },
): Promise<string> {
  const started = performance.now()
  const ingress = new IngressStream({ policy: ctx.bareLineEndings, maxSize: ctx.maxSize, maxHeaderSize: ctx.maxHeaderSize })
  // Its errors reach the chain through reads; the refusal for the client is `ingress.failure`.
  ingress.on('error', () => {})
  const inputDone = new Promise<void>((resolve) => stream.once('end', resolve).once('close', resolve))
  // smtp-server emits a client disconnect as an error only to a listener; pass it down the chain.
  let clientGone = false
  stream.on('error', (err) => {
    clientGone = true
    ingress.destroy(err)
  })
  // Whenever the chain stops reading early (refused, failed), drain the rest for the session.
  ingress.once('close', () => {
    if (!stream.readableEnded) {
      stream.unpipe(ingress)
      stream.resume()
    }
  })
  stream.pipe(ingress)

  const timings: StageTimings = {}
  let report: DeliveryReport | undefined
  let failure: SmtpError | undefined
  let reply = ''
  try {
    const { head, separator } = await ingress.header
    tx.attachContent(HeaderBlock.parse(head, separator), ingress, ctx.spool)
    if (ctx.trace !== 'off') tx.headers.add('Received', receivedValue(session, tx.envelope, tx.id, ctx.hostname, ctx.trace))
    report = complete(await untilAnswered(ctx.pipeline.deliver(tx, timings), tx, inputDone, ctx), tx, ctx.logger)
    if (!stream.readableEnded) ingress.destroy() // the chain finished without reading everything
    await inputDone
    if (ingress.failure) throw ingress.failure
    const accepted = report.accepted.length
    if (!accepted) throw pickError(report.rejected)
    if (report.rejected.length) await bounce(tx, report.rejected, origins, ctx)
    reply = `2.0.0 Ok: queued as ${tx.id}`
    return reply
  } catch (err) {
    failure = ingress.failure ?? toSmtpError(err)
    reply = failure.toReply()
    if (!(err instanceof SmtpError) && !clientGone && !ctx.left.aborted) {
      // A bug or an outage: the client got 451, operators need the cause.
      ctx.unexpected(err, { id: tx.id, session: session.id, client: session.remoteAddress, stage: failure.stage }, 'unexpected error in chain')
    }
    // X.4.x: no answer from the next hop (refused, timed out, TLS or certificate failure).
    if (failure.enhanced.startsWith('4.4.') && failure.reason) ctx.nextHopDown(failure)
    throw failure
  } finally {
    if (!ingress.destroyed) ingress.destroy()
    await tx.dispose()
    ctx.logger.info(
      {
        id: tx.id,
        session: session.id,
        client: session.remoteAddress,
        ...(session.user ? { user: session.user } : {}),
        from: tx.envelope.mailFrom?.address ?? '<>',
        to: tx.envelope.rcptTo.map((r) => r.address),
        size: stream.byteLength,
        accepted: report?.accepted.length ?? 0,
        rejected: report?.rejected.length ?? tx.envelope.rcptTo.length,
        reply: failure ? reply : `250 ${reply}`,
        ...(failure?.stage ? { stage: failure.stage } : {}),
        ...(failure?.reason ? { reason: failure.reason } : {}),
        ms: Math.round(performance.now() - started),
        stages: roundAll(timings),
      },
      failure ? 'message refused' : 'message relayed',
    )
  }
}

/** Makes sure every recipient is accounted for: one missing from the report is a temporary failure. */
function complete(report: DeliveryReport, tx: MessageImpl, logger: Logger): DeliveryReport {
  const seen = new Set([...report.accepted, ...report.rejected.map((r) => r.rcpt)].map((a) => a.address.toLowerCase()))
  const missing = tx.envelope.rcptTo.filter((r) => !seen.has(r.address.toLowerCase()))
  if (!missing.length) return report
  logger.error({ id: tx.id, missing: missing.map((r) => r.address), code: 'ERR_RELAY_INVALID_REPORT' }, 'transport report lacks recipients')
  return { ...report, rejected: [...report.rejected, ...missing.map((rcpt) => ({ rcpt, error: reject.tempFail() }))] }
}

/** No recipient accepted: a temporary error wins, so the client retries rather than bounces. */
function pickError(rejected: readonly RejectedRecipient[]): SmtpError {
  return (rejected.find((r) => r.error.temporary) ?? rejected[0])?.error ?? reject.tempFail()
}

/**
 * Some recipients were accepted and some not. The client gets 250 (a failure reply would make it
 * send again to those that have the message), so the others get a DSN: never dropped silently.
 */
async function bounce(
  tx: MessageImpl,
  rejected: readonly RejectedRecipient[],
  origins: ReadonlyMap<string, Address>,
  ctx: DataContext,
): Promise<void> {
  const failed: FailedRecipient[] = rejected.map((r) => {
    const original = origins.get(r.rcpt.address.toLowerCase())
    return original && original !== r.rcpt ? { ...r, original } : r
  })
  const fields = { id: tx.id, failed: failed.map((f) => `${f.rcpt.address} (${f.error.toReply()})`) }
  const dsn = buildDsn(tx, failed, ctx.hostname)
  if (!dsn) {
    ctx.logger.warn(fields, 'recipients failed after DATA; no DSN due (null sender or NOTIFY)')
    return
  }
  const bounceMsg = new MessageImpl({ session: tx.session, mailFrom: null })
  bounceMsg.addOriginalRecipient(dsn.to)
  bounceMsg.setEnvelope({ mailFrom: null, rcptTo: [dsn.to] })
  bounceMsg.attachContent(dsn.headers, Readable.from([dsn.body]), ctx.spool)
  try {
    const report = await ctx.pipeline.send(bounceMsg)
    if (!report.accepted.length) throw report.rejected[0]?.error ?? reject.tempFail()
    ctx.logger.info({ ...fields, dsn: bounceMsg.id, to: dsn.to.address }, 'sent DSN for failed recipients')
  } catch (err) {
    ctx.logger.error({ ...fields, err: toSmtpError(err).toReply() }, 'DSN for failed recipients could not be delivered')
  } finally {
    await bounceMsg.dispose()
  }
}

function roundAll(timings: StageTimings): StageTimings {
  const out: StageTimings = {}
  for (const key in timings) out[key] = Math.round(timings[key]! * 100) / 100
  return out
}

/**
 * The chain's outcome, unless the client leaves first or the chain overruns `replyTimeout` after
 * the final dot: then the transaction is aborted (stages and the transport see its signal; the
 * SMTP transport stops its upstream transfer before the final dot) and the wait ends at once.
 */
function untilAnswered<T>(work: Promise<T>, tx: MessageImpl, inputDone: Promise<void>, ctx: DataContext & { left: AbortSignal }): Promise<T> {
  work.catch(() => {}) // an abandoned chain may still fail later: not unhandled
  return new Promise<T>((resolve, rejectWork) => {
    let settled = false
    let timer: NodeJS.Timeout | undefined
    const stop = (reason: unknown) => {
      tx.abort(reason)
      rejectWork(reason)
    }
    const onLeft = () => stop(ctx.left.reason)
    if (ctx.left.aborted) return onLeft()
    ctx.left.addEventListener('abort', onLeft, { once: true })
    void inputDone.then(() => {
      if (settled) return
      timer = setTimeout(() => {
        ctx.unexpected(
          new Error(`the chain did not answer within ${ctx.replyTimeout} ms of the final dot`),
          { id: tx.id, session: tx.session.id },
          'chain did not answer in time',
        )
        stop(reject.tempFail(undefined, 'the chain overran the reply timeout'))
      }, ctx.replyTimeout).unref()
    })
    work.then(resolve, rejectWork).finally(() => {
      settled = true
      clearTimeout(timer)
      ctx.left.removeEventListener('abort', onLeft)
    })
  })
}
