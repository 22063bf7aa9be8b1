/**
 * The DATA phase on the wire: guard the incoming bytes (size, bare line endings, a header section
 * that starts with a continuation line), split off the header section, add the trace field, and
 * hand the content to the transaction, whose outcome becomes the one reply the client gets.
 * Whatever happens, the client's stream is drained so the session stays in step; a client that
 * goes away mid-DATA aborts the transaction at once.
 */
import type { SMTPServerDataStream } from 'smtp-server'
import { HeaderBlock } from '../../core/body/header-block.js'
import type { BareLineEndingPolicy } from '../../core/body/line-endings.js'
import type { PipelineTransaction } from '../../core/transaction.js'
import { IngressStream } from './ingress-stream.js'
import { receivedValue, type TraceMode } from './received.js'
import type { SessionView } from './session.js'

/** What the DATA phase needs from the relay. */
export interface DataContext {
  hostname: string
  maxSize: number
  maxHeaderSize: number
  bareLineEndings: BareLineEndingPolicy
  trace: TraceMode
}

/** Receives one message into `tx`. Resolves with the text of the 250 reply; rejects with the `SmtpError` to answer. */
export async function receiveMessage(stream: SMTPServerDataStream, tx: PipelineTransaction, session: SessionView, ctx: DataContext): Promise<string> {
  const ingress = new IngressStream({ policy: ctx.bareLineEndings, maxSize: ctx.maxSize, maxHeaderSize: ctx.maxHeaderSize })
  // Its errors reach the chain through reads; the refusal for the client is `ingress.failure`.
  ingress.on('error', () => {})
  const inputDone = new Promise<void>((resolve) => stream.once('end', resolve).once('close', resolve))
  // smtp-server emits a client disconnect as an error only to a listener: the client is gone.
  stream.on('error', (err) => {
    tx.abort(new Error('client disconnected'))
    ingress.destroy(err)
  })
  // Whenever the chain stops reading early (refused, failed, done), drain the rest for the session.
  ingress.once('close', () => {
    if (!stream.readableEnded) {
      stream.unpipe(ingress)
      stream.resume()
    }
  })
  stream.pipe(ingress)

  const headers = ingress.header.then(({ head, separator }) => {
    const block = HeaderBlock.parse(head, separator)
    if (ctx.trace !== 'off') block.add('Received', receivedValue(session, tx.envelope, tx.id, ctx.hostname, ctx.trace))
    return block
  })
  const outcome = await tx.data({
    headers,
    body: ingress,
    size: () => stream.byteLength,
    done: inputDone.then(() => ingress.failure),
  })
  if (!ingress.destroyed) ingress.destroy()
  if (outcome.error) throw outcome.error
  return outcome.reply.slice(4)
}
