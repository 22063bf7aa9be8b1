/**
 * `startHttpsServer()`: an HTTPS server on a loopback address, standing in for MTA-STS policy
 * hosts (`mta-sts.<domain>`) and TLS-RPT report endpoints. It answers per request with what
 * `respond` says (a policy file, a 404, a redirect) and logs every request, so tests count
 * fetches instead of trusting a cache to say how often it was missed.
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'

export interface HttpsRequestLog {
  readonly method: string
  readonly path: string
  readonly host: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: Buffer
}

export interface HttpsAnswer {
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Buffer
}

export interface TestHttpsServer {
  readonly ip: string
  readonly port: number
  readonly requests: HttpsRequestLog[]
  close(): Promise<void>
}

/** Starts the server (see the file header). `respond` may be changed between requests by closing over state. */
export async function startHttpsServer(options: {
  ip: string
  port?: number
  key: string
  cert: string
  respond: (request: HttpsRequestLog) => HttpsAnswer
}): Promise<TestHttpsServer> {
  const requests: HttpsRequestLog[] = []
  const server: Server = createServer({ key: options.key, cert: options.cert }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const log: HttpsRequestLog = {
        method: req.method ?? '',
        path: req.url ?? '',
        host: req.headers.host ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      }
      requests.push(log)
      const answer = options.respond(log)
      res.writeHead(answer.status ?? 200, answer.headers ?? {})
      res.end(answer.body ?? '')
    })
  })
  server.on('tlsClientError', () => {})
  server.listen(options.port ?? 0, options.ip)
  await once(server, 'listening')
  return {
    ip: options.ip,
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
