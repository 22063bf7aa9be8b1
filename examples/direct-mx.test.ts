import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { selfCheck } from './direct-mx.js'

describe('the direct MX example', () => {
  it('delivers a LAN message to each domain’s MX, bounces the null-MX recipient with a notice, writes TLS reports and is no open relay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'direct-mx-test-'))
    try {
      expect(await selfCheck({ QUEUE_DIR: join(dir, 'queue'), TLSRPT_DIR: join(dir, 'tlsrpt') })).toEqual([])
      const files = (await readdir(join(dir, 'tlsrpt'))).sort()
      expect(files.map((f) => f.split('!')[1])).toEqual(['alpha.test', 'beta.test', 'office.test'])
      const report = JSON.parse(gunzipSync(await readFile(join(dir, 'tlsrpt', files[0]!))).toString())
      // The stand-ins offer no STARTTLS: one session, counted as a failure under "no policy found".
      expect(report.policies).toMatchObject([
        {
          policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'alpha.test' },
          summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
        },
      ])
      expect(report.policies[0]['failure-details']).toMatchObject([{ 'result-type': 'starttls-not-supported', 'receiving-ip': '127.0.0.2' }])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
