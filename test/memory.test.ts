import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { describe, expect, it } from 'vitest'
import { startSink } from '../src/testing/index.js'
import { BIG_MESSAGE_TIMEOUT, bigMessage, startMeasuredRelay } from './helpers/memory.js'
import { havePeer } from './helpers/peers.js'
import { startClamd, startSpamd } from './helpers/scanners.js'

const MiB = 1024 * 1024

describe('memory', () => {
  it(
    'relays a 100 MB message through a transforming and a spooling stage holding under 64 MB more memory',
    async () => {
      const sink = await startSink({ keepContent: false })
      const relay = await startMeasuredRelay(sink.port, 'spool')
      try {
        const client = createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true })
        const envelope = { from: 'a@example.com', to: ['b@example.org'] }
        await client.sendMail({ envelope, raw: 'Subject: warm-up\r\n\r\nsmall\r\n' })
        await relay.mark()
        await client.sendMail({ envelope, raw: bigMessage(100 * MiB) })
        const growth = await relay.growth()
        client.close()
        const [, big] = await sink.waitForMessages(2)
        expect(big!.size).toBeGreaterThan(100 * MiB)
        console.log(`relay live memory growth ${growth.live.toFixed(1)} MiB, peak RSS growth ${growth.rss.toFixed(1)} MiB for a 100 MiB message`)
        expect(growth.live).toBeLessThan(64)
      } finally {
        await relay.stop()
        await sink.close()
      }
    },
    BIG_MESSAGE_TIMEOUT,
  )
})

const scanners = havePeer('spamd', 'apt-get install -y spamassassin spamd') && havePeer('clamd', 'apt-get install -y clamav-daemon')

describe.skipIf(!scanners)('memory of the content stages', () => {
  it(
    'relays a 50 MB attachment through spam scan, virus scan, disclaimer and archive holding under 64 MB more memory',
    async () => {
      const [spamdDaemon, clamdDaemon] = await Promise.all([startSpamd(), startClamd({ streamMaxLength: '100M' })])
      const archive = await mkdtemp(join(tmpdir(), 'relaychain-archive-'))
      const sink = await startSink({ keepContent: false })
      const relay = await startMeasuredRelay(sink.port, 'content', {
        SPAMD_PORT: String(spamdDaemon.port),
        CLAMD_PORT: String(clamdDaemon.port),
        ARCHIVE_DIR: archive,
      })
      try {
        const client = createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true })
        const envelope = { from: 'a@example.com', to: ['b@example.org'] }
        await client.sendMail({ envelope, raw: 'Subject: warm-up\r\nContent-Type: text/plain\r\n\r\nsmall\r\n' })
        await relay.mark()
        const head = [
          'Subject: report',
          'MIME-Version: 1.0',
          'Content-Type: multipart/mixed; boundary="b1"',
          '',
          '--b1',
          'Content-Type: text/plain; charset=utf-8',
          '',
          'The report is attached.',
          '--b1',
          'Content-Type: application/octet-stream; name="report.bin"',
          'Content-Transfer-Encoding: base64',
          'Content-Disposition: attachment; filename="report.bin"',
          '',
          '',
        ].join('\r\n')
        await client.sendMail({ envelope, raw: bigMessage(50 * MiB, head, '--b1--\r\n') })
        const growth = await relay.growth()
        client.close()
        const [, big] = await sink.waitForMessages(2)
        expect(big!.size).toBeGreaterThan(50 * MiB)
        expect((await readdir(archive)).filter((f) => f.endsWith('.eml'))).toHaveLength(2)
        console.log(
          `relay live memory growth ${growth.live.toFixed(1)} MiB, peak RSS growth ${growth.rss.toFixed(1)} MiB for a 50 MiB attachment through scan, disclaimer and archive`,
        )
        expect(growth.live).toBeLessThan(64)
      } finally {
        await relay.stop()
        await sink.close()
        await Promise.all([spamdDaemon.stop(), clamdDaemon.stop()])
        await rm(archive, { recursive: true, force: true })
      }
    },
    BIG_MESSAGE_TIMEOUT,
  )
})
