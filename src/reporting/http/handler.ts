/**
 * `trackingHandler()`: the HTTP side of tracking, as a plain `node:http` `(req, res)` handler
 * (mount it in Express, Fastify or Hono, or give it its own `createServer`). Routes, under an
 * optional `basePath`:
 *
 * - `GET|HEAD /o/<token>`: the open pixel (a 1×1 GIF); records `opened`.
 * - `GET|HEAD /c/<token>`: a 302 to the URL bound into the signed token, and only that one; a bad,
 *   tampered or expired token gets a 404 page, never a redirect; records `clicked`.
 * - `GET /u/<token>`: a confirmation page with a button; never unsubscribes (scanners prefetch).
 * - `POST /u/<token>`: unsubscribes at once (RFC 8058 one-click: body `List-Unsubscribe=One-Click`,
 *   no login); records `unsubscribed`, which suppresses the recipient for that sender.
 * - `GET /status`: JSON counts of today and the webhook backlog.
 * - `GET /dashboard`: the dashboard page (`dashboard.ts`), if enabled.
 *
 * Anything else is passed to `next` when given (mounted in an application), else 404.
 * Machines (see `machine.ts`) are recorded with `machine: true`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Reporting } from '../reporting.js'
import { dayOf } from '../store/aggregates.js'
import { type TokenPayload, type TrackingKey, verifyToken } from '../tracking/token.js'
import { renderDashboard } from './dashboard.js'
import { isMachine } from './machine.js'

/**
 * Options of {@link trackingHandler}.
 *
 * @category Reporting
 */
export interface TrackingHandlerOptions {
  /** The hub opens, clicks and unsubscribes are recorded in; its store answers `/status` and `/dashboard`. */
  readonly reporting: Reporting
  /** The keys the `tracking()` stage signs with. */
  readonly keys: readonly TrackingKey[]
  /** A prefix the routes live under, e.g. `/t`. Default none. */
  readonly basePath?: string
  /** Requests this soon after delivery (ms) are a scanner's. Default 1 000. */
  readonly scannerWindow?: number
  /** Serve `/dashboard` (and `/status`). Default true; put them behind your own auth when exposed. */
  readonly dashboard?: boolean
  /** Extra figures for `/status` (the webhooks' backlog, the queue's size). */
  readonly status?: () => Record<string, unknown>
  /** The clock. Default `Date.now`. */
  readonly clock?: () => number
}

/**
 * A `node:http` request handler; `next` is called for paths it does not serve.
 *
 * @category Reporting
 */
export type TrackingRequestHandler = (req: IncomingMessage, res: ServerResponse, next?: () => void) => void

const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64')

function page(res: ServerResponse, status: number, title: string, body: string): void {
  const html = `<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`
  res
    .writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(html) })
    .end(html)
}

async function body(req: IncomingMessage, max = 4096): Promise<string> {
  let text = ''
  for await (const chunk of req) {
    text += String(chunk)
    if (text.length > max) break
  }
  return text
}

/**
 * Creates the handler.
 *
 * @example
 * ```ts
 * const handler = trackingHandler({ reporting, keys })
 * createServer(handler).listen(8080)
 * // or in Express: app.use('/t', (req, res, next) => handler(req, res, next))
 * ```
 *
 * @category Reporting
 */
export function trackingHandler(options: TrackingHandlerOptions): TrackingRequestHandler {
  const { reporting, keys } = options
  const prefix = (options.basePath ?? '').replace(/\/$/, '')
  const clock = options.clock ?? Date.now
  const window = options.scannerWindow ?? 1000

  function who(req: IncomingMessage, payload: TokenPayload) {
    const userAgent = req.headers['user-agent']
    const ip = req.socket.remoteAddress
    const delivered = reporting.store.deliveredAt(payload.messageId, payload.recipient)
    const since = delivered === undefined ? undefined : clock() - delivered
    const machine = isMachine(
      { method: req.method ?? 'GET', ...(userAgent ? { userAgent } : {}), ...(ip ? { ip } : {}), ...(since !== undefined ? { since } : {}) },
      window,
    )
    return {
      queueId: payload.messageId,
      recipient: payload.recipient,
      machine,
      ...(userAgent ? { userAgent: userAgent.slice(0, 256) } : {}),
      ...(ip ? { ip } : {}),
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, next?: () => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://handler.invalid')
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : undefined
    const m = path === undefined ? null : /^\/([ocu])\/([A-Za-z0-9_.-]{1,16384})$/.exec(path)
    const method = req.method ?? 'GET'
    if (m) {
      const [, kind, token] = m
      const payload = verifyToken(token!, keys, { now: Math.floor(clock() / 1000) })
      const isRead = method === 'GET' || method === 'HEAD'
      if (!payload || (kind === 'c' && !payload.url) || (kind !== 'c' && payload.url) || (!isRead && !(kind === 'u' && method === 'POST'))) {
        return page(res, 404, 'Not found', '<p>This link is not valid.</p>')
      }
      if (kind === 'o') {
        reporting.record({ type: 'opened', ...who(req, payload) })
        res.writeHead(200, { 'content-type': 'image/gif', 'content-length': GIF.length, 'cache-control': 'no-store, max-age=0' })
        return void res.end(method === 'HEAD' ? undefined : GIF)
      }
      if (kind === 'c') {
        reporting.record({ type: 'clicked', ...who(req, payload), url: payload.url!, link: payload.link ?? 0 })
        res.writeHead(302, { location: payload.url!, 'cache-control': 'no-store', 'content-length': 0 })
        return void res.end()
      }
      if (method === 'POST') {
        const form = await body(req)
        const oneClick = /(^|&)List-Unsubscribe=One-Click(&|$)/.test(form)
        reporting.record({ type: 'unsubscribed', queueId: payload.messageId, recipient: payload.recipient, method: oneClick ? 'one-click' : 'page' })
        return page(res, 200, 'Unsubscribed', '<p>You will not receive these messages any more.</p>')
      }
      return page(
        res,
        200,
        'Unsubscribe',
        `<p>Stop receiving these messages?</p><form method="post"><input type="hidden" name="confirm" value="1"><button type="submit">Unsubscribe</button></form>`,
      )
    }
    if (options.dashboard !== false && method === 'GET' && path === '/status') {
      const today = reporting.store.stats({ by: 'day', since: dayOf(clock()), until: dayOf(clock()) })[0]
      const json = JSON.stringify({ today: today ?? null, ...(options.status?.() ?? {}) })
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      return void res.end(json)
    }
    if (options.dashboard !== false && method === 'GET' && path === '/dashboard') {
      const html = await renderDashboard(reporting.store, url.searchParams.get('message') ?? undefined)
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      return void res.end(html)
    }
    if (next) return next()
    page(res, 404, 'Not found', '')
  }

  return function trackingRequest(req, res, next) {
    handle(req, res, next).catch(() => {
      if (!res.headersSent) page(res, 500, 'Error', '')
      else res.destroy()
    })
  }
}
