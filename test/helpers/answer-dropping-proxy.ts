/**
 * A TCP proxy in front of PostgreSQL that can lose one answer: once armed with a piece of SQL, it
 * forwards the statement that contains it, lets the server run and commit it, and cuts that
 * connection when the server's answer is complete instead of passing it on. The client sees its
 * connection die with the statement done: what a server restart or a network cut does at the
 * worst moment.
 */
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'

/** ReadyForQuery ('Z', length 5): the server is done with the statement (committed, outside a transaction). */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5])

export interface AnswerDroppingProxy {
  readonly port: number
  /** Loses the answer to the next statement containing `sql`; resolves once it was lost. */
  dropAnswerTo(sql: string): Promise<void>
  close(): Promise<void>
}

export async function startAnswerDroppingProxy(target: { host?: string; port: number }): Promise<AnswerDroppingProxy> {
  let armed: { sql: Buffer; dropped: () => void } | undefined
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host ?? '127.0.0.1')
    sockets.add(client).add(upstream)
    const cut = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', cut).on('close', cut)
    upstream.on('error', cut).on('close', cut)
    let losing: { held: Buffer; dropped: () => void } | undefined
    client.on('data', (chunk: Buffer) => {
      if (armed && chunk.includes(armed.sql)) {
        losing = { held: Buffer.alloc(0), dropped: armed.dropped }
        armed = undefined
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!losing) return void client.write(chunk)
      losing.held = Buffer.concat([losing.held, chunk])
      if (!losing.held.includes(READY_FOR_QUERY)) return
      cut()
      losing.dropped()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('proxy has no port')
  return {
    port: address.port,
    dropAnswerTo(sql) {
      return new Promise<void>((dropped) => (armed = { sql: Buffer.from(sql), dropped }))
    },
    async close() {
      for (const s of sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}
