import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { afterEach, describe, expect, it } from 'vitest'
import { type Newsletter, selfCheck, startNewsletter } from './newsletter.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function start(env: NodeJS.ProcessEnv): Promise<Newsletter> {
  const n = await startNewsletter({ RELAY_PORT: '0', HTTP_PORT: '0', ...env })
  let closed = false
  cleanup.push(async () => {
    if (!closed) await n.close()
  })
  return { ...n, close: async () => void (closed || ((closed = true), await n.close())) }
}

describe('the newsletter example', () => {
  it('tracks, unsubscribes, reads a DSN and an ARF report, signs every webhook, suppresses who left and relays for nobody else', async () => {
    const n = await start({})
    expect(await selfCheck(n)).toEqual([])
  })

  it('keeps its suppressions and its tracking keys in DATA_DIR across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'newsletter-test-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const first = await start({ DATA_DIR: dir, SMTP_USER: 'app', SMTP_PASS: 'a-long-app-password' })
    expect(await selfCheck(first)).toEqual([])
    const rcpt = (user: string) => first.upstream!.messages.flatMap((m) => m.rcptTo).find((r) => r.startsWith(`${user}.`))!
    const [ann, bob, carol] = [rcpt('ann'), rcpt('bob'), rcpt('carol')]
    const copy = first.upstream!.messages.find((m) => m.rcptTo.includes(ann))!
    const unsubscribe = /^List-Unsubscribe: <(https?:[^>]+)>/m.exec(copy.raw.toString())![1]!
    const token = unsubscribe.slice(unsubscribe.lastIndexOf('/') + 1)
    await first.close()

    const second = await start({ DATA_DIR: dir, SMTP_USER: 'app', SMTP_PASS: 'a-long-app-password' })
    expect(second.suppressions.check(bob, second.from)).toMatchObject({ reason: 'unsubscribe' })
    expect(second.suppressions.check(carol, second.from)).toMatchObject({ reason: 'hard-bounce' })
    // A link from mail sent before the restart still verifies (same key), on the new port.
    const res = await fetch(`${second.httpUrl}/u/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    })
    expect(res.status).toBe(200)
    expect(second.suppressions.check(ann, second.from)).toMatchObject({ reason: 'unsubscribe' })
    const client = createTransport({
      host: second.host,
      port: second.port,
      tls: { rejectUnauthorized: false },
      auth: { user: 'app', pass: 'a-long-app-password' },
    })
    const refused = await client
      .sendMail({ from: second.from, to: carol, subject: 'Again', text: 'x' })
      .catch((e: { response: string }) => e.response)
    client.close()
    expect(refused).toMatch(/^550 5\.7\.1/)
    // And the self-check runs again on the kept DATA_DIR (new addresses of its own).
    expect(await selfCheck(second)).toEqual([])
  })
})
