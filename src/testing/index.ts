/**
 * Test helpers, public so that users test their own stages and chains the way we test ours:
 * real SMTP servers on loopback ports, and fakes only for what is not under test.
 *
 * @module relaychain/testing
 */

export type { MemoryDelivery, MemoryTransport, MemoryTransportOptions } from './memory-transport.js'
export { memoryTransport } from './memory-transport.js'
export type { OpenRelayCheckOptions, OpenRelayReport, RelayTestResult } from './open-relay.js'
export { checkOpenRelay } from './open-relay.js'
export type { Sink, SinkMessage, SinkOptions } from './sink.js'
export { startSink } from './sink.js'
export type { EnvelopeHookOptions, RcptResult, TestMessageOptions } from './test-message.js'
export { runMailFrom, runRcptTo, runStage, testMessage } from './test-message.js'
