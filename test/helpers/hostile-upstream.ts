/**
 * An upstream that fails in the middle of DATA, on purpose: resets the connection mid-transfer,
 * answers a refusal before the message is complete, or closes after the final dot without a
 * reply. It speaks just enough SMTP to get a relay's transport into DATA, and never accepts a
 * message.
 */

import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'

export type UpstreamFault = 'reset-mid-transfer' | 'refuse-mid-transfer' | 'close-after-final-dot'

export interface HostileUpstream {
  readonly port: number
  /** Transactions that reached DATA. */
  readonly dataStarted: number
  close(): Promise<void>
}

/** Bytes of content after which the mid-transfer faults strike. */
const STRIKE_AFTER = 64 * 1024

export async function startHostileUpstream(fault: UpstreamFault): Promise<HostileUpstream> {
  let dataStarted = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.write('220 hostile.test ESMTP\r\n')
    let buffer = ''
    let inData = false
    let received = 0
    socket.on('data', (chunk: Buffer) => {
      if (inData) {
        received += chunk.length
        buffer = (buffer + chunk.toString('latin1')).slice(-5)
        if (fault === 'reset-mid-transfer' && received >= STRIKE_AFTER) socket.resetAndDestroy()
        else if (fault === 'refuse-mid-transfer' && received >= STRIKE_AFTER) socket.end('554 5.6.0 Content refused mid-transfer\r\n')
        else if (fault === 'close-after-final-dot' && buffer.endsWith('\r\n.\r\n')) socket.destroy()
        return
      }
      buffer += chunk.toString('latin1')
      for (let nl = buffer.indexOf('\r\n'); nl >= 0 && !inData; nl = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, nl).toUpperCase()
        buffer = buffer.slice(nl + 2)
        if (line.startsWith('EHLO')) socket.write('250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n')
        else if (line.startsWith('DATA')) {
          dataStarted++
          inData = true
          socket.write('354 go ahead\r\n')
        } else if (line.startsWith('QUIT')) socket.end('221 bye\r\n')
        else socket.write('250 ok\r\n')
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get dataStarted() {
      return dataStarted
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
