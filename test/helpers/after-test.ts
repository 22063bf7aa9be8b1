/**
 * Per-test clean-up. Kept apart from relay.ts, which child processes import: loading vitest there
 * would change the memory those processes measure.
 */
import { onTestFinished } from 'vitest'
import { type RelayOptions, type Stage, smtpTransport } from '../../src/index.js'
import { type Sink, type SinkOptions, startSink } from '../../src/testing/index.js'
import { startRelay, type TestRelay } from './relay.js'

/** Runs the given clean-ups when the current test finishes, last given first (servers, clients, temp dirs). */
export function afterTest(...cleanups: Array<() => unknown>): void {
  onTestFinished(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
}

/**
 * A relay with `stages` forwarding over SMTP to a fresh recording sink; both close when the current
 * test finishes.
 */
export async function relayToSink(stages: Stage[], relay: Partial<RelayOptions> = {}, sink: SinkOptions = {}): Promise<{ sink: Sink; t: TestRelay }> {
  const upstream = await startSink(sink)
  const t = await startRelay({ stages, transport: smtpTransport({ host: upstream.host, port: upstream.port }), ...relay })
  afterTest(
    () => upstream.close(),
    () => t.close(),
  )
  return { sink: upstream, t }
}
