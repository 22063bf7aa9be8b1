import { generateKeyPairSync } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { simpleParser } from 'mailparser'
import { afterEach, describe, expect, it } from 'vitest'
import { createPipeline, dkimSign, type RelayError } from '../../src/index.js'
import { trackingHandler } from '../../src/reporting/http/handler.js'
import { tracking } from '../../src/stages/tracking.js'
import { memoryTransport } from '../../src/testing/index.js'
import { type ReportingHarness, startReporting } from './harness.js'

const keys = [{ id: 'k1', secret: 'a-tracking-secret-of-at-least-32-bytes!!' }]
const cleanup: Array<() => unknown> = []
let h: ReportingHarness | undefined
afterEach(async () => {
  await h?.close()
  h = undefined
  for (const f of cleanup.splice(0)) await f()
})

const HTML =
  '<html><body><p>Hi!</p><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> <a href="mailto:help@shop.example">Mail us</a> <a href="https://shop.example/new" data-relay-notrack>New</a></body></html>'

async function httpServer(): Promise<{ base: string; use(h: RequestListener): void }> {
  let handler: RequestListener = (_req, res) => res.writeHead(503).end()
  const server = createServer((req, res) => handler(req, res))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanup.push(() => new Promise((r) => server.close(r)))
  cleanup.push(() => server.closeAllConnections())
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, use: (h) => void (handler = h) }
}

const browser = { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36' }

async function trackedMail() {
  const http = await httpServer()
  // After the queue, as signing is: each recipient's copy goes to the next hop, not back into the queue.
  h = await startReporting({ after: [tracking({ baseUrl: http.base, keys, listUnsubscribe: { mailto: 'unsubscribe@shop.example' } })] })
  http.use(trackingHandler({ reporting: h.reporting, keys, clock: () => h!.clock() }) as RequestListener)
  await h.send({ to: ['ann@example.org', 'bob@example.org'], html: HTML })
  await h.drain()
  const messages = await h.sink.waitForMessages(2)
  const parsed = await Promise.all(messages.map((m) => simpleParser(m.raw)))
  // A scanner's window after delivery has passed.
  h.clock.advance(60_000)
  return { http, messages, parsed }
}

describe('tracking() and its HTTP handler', () => {
  it('sends each recipient a copy whose links and pixel are signed for them, leaving mailto and marked links alone, with RFC 8058 headers', async () => {
    const { http, messages, parsed } = await trackedMail()
    expect(messages.map((m) => m.rcptTo)).toEqual([['ann@example.org'], ['bob@example.org']])
    for (const p of parsed) {
      const html = String(p.html)
      expect(html).toContain(`href="${http.base}/c/`)
      expect(html).toContain('href="mailto:help@shop.example"')
      expect(html).toContain('href="https://shop.example/new" data-relay-notrack')
      expect(html).toMatch(new RegExp(`<img src="${http.base}/o/[^"]+"`))
    }
    for (const m of messages) expect(m.raw.toString()).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m)
    for (const m of messages)
      expect(m.raw.toString()).toMatch(
        new RegExp(`^List-Unsubscribe: <${http.base}/u/[A-Za-z0-9_.-]+>,\\s+<mailto:unsubscribe@shop\\.example\\?subject=unsubscribe>`, 'm'),
      )
    expect(String(parsed[0]!.html)).not.toBe(String(parsed[1]!.html))
  })

  it('redirects a click to the bound URL only, records it, and answers a tampered or foreign token with a 404 page', async () => {
    const { parsed } = await trackedMail()
    const click = /href="([^"]+\/c\/[^"]+)"/.exec(String(parsed[0]!.html))![1]!
    const res = await fetch(click, { redirect: 'manual', headers: browser })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe('https://shop.example/sale?a=1&b=2')
    expect(h!.of('clicked')[0]).toMatchObject({
      recipient: 'ann@example.org',
      url: 'https://shop.example/sale?a=1&b=2',
      link: 0,
      machine: false,
      sender: 'news@shop.example',
    })
    const token = click.slice(click.lastIndexOf('/') + 1)
    const tampered = `${click.slice(0, click.lastIndexOf('/') + 1)}${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`
    for (const bad of [
      tampered,
      click.replace('/c/', '/c/x'),
      click.replace(/\/c\/.*/, `/c/${token.split('.').slice(0, 2).join('.')}.e30.${token.split('.')[3]}`),
    ]) {
      const r = await fetch(bad, { redirect: 'manual' })
      expect(r.status).toBe(404)
      expect(r.headers.get('location')).toBeNull()
    }
    // A pixel token carries no URL: it never redirects.
    const pixel = /<img src="([^"]+)"/.exec(String(parsed[0]!.html))![1]!
    expect((await fetch(pixel.replace('/o/', '/c/'), { redirect: 'manual' })).status).toBe(404)
    expect(h!.of('clicked').length).toBe(1)
  })

  it('serves the pixel, counting a browser as human and HEAD, Apple-style proxies and fetches right after delivery as machine', async () => {
    const { parsed } = await trackedMail()
    const pixel = /<img src="([^"]+)"/.exec(String(parsed[0]!.html))![1]!
    const res = await fetch(pixel, { headers: browser })
    expect(res.headers.get('content-type')).toBe('image/gif')
    expect(
      Buffer.from(await res.arrayBuffer())
        .subarray(0, 6)
        .toString(),
    ).toBe('GIF89a')
    await fetch(pixel, { method: 'HEAD', headers: browser })
    await fetch(pixel, { headers: { 'user-agent': 'Mozilla/5.0' } })
    expect(h!.of('opened').map((o) => o.machine)).toEqual([false, true, true])
    const stats = h!.store.stats({ by: 'day' })[0]!
    expect(stats).toMatchObject({ opens: 1, uniqueOpens: 1, machineOpens: 2 })
  })

  it('unsubscribes on the one-click POST at once and suppresses the recipient; a GET only shows the confirmation page', async () => {
    const { messages } = await trackedMail()
    const url = /^List-Unsubscribe: <(http[^>]+)>/m.exec(messages[1]!.raw.toString())![1]!
    const get = await fetch(url)
    expect(get.status).toBe(200)
    expect(await get.text()).toContain('<form method="post">')
    expect(h!.of('unsubscribed')).toEqual([])
    expect(h!.suppressions.check('bob@example.org', 'news@shop.example')).toBeUndefined()
    const post = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    })
    expect(post.status).toBe(200)
    expect(h!.of('unsubscribed')[0]).toMatchObject({ recipient: 'bob@example.org', method: 'one-click' })
    expect(h!.suppressions.check('bob@example.org', 'news@shop.example')).toMatchObject({ reason: 'unsubscribe', scope: 'shop.example' })
  })

  it('is refused after a DKIM signer when the chain is built (the order lint)', () => {
    const signer = dkimSign({ keys: { 'shop.example': { selector: 's1', privateKey: generateKeyPairSync('ed25519').privateKey } } })
    expect(() => createPipeline({ stages: [signer, tracking({ baseUrl: 'https://t.example', keys })], transport: memoryTransport() })).toThrow(
      expect.objectContaining({ code: 'ERR_RELAY_UNSAFE_ORDER' }) as unknown as RelayError,
    )
    expect(() => createPipeline({ stages: [tracking({ baseUrl: 'https://t.example', keys }), signer], transport: memoryTransport() })).not.toThrow()
  })
})
