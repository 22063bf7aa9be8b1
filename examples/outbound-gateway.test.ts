import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { havePeer } from '../test/helpers/peers.js'
import { type Daemon, startClamd, startSpamd } from '../test/helpers/scanners.js'
import { selfCheck, startGateway } from './outbound-gateway.js'

const scanners = havePeer('spamd', 'apt-get install -y spamassassin spamd') && havePeer('clamd', 'apt-get install -y clamav-daemon')

describe.skipIf(!scanners)('the outbound gateway example', () => {
  let spamd: Daemon
  let clamd: Daemon
  beforeAll(async () => {
    ;[spamd, clamd] = await Promise.all([startSpamd(), startClamd()])
  })
  afterAll(async () => {
    await Promise.all([spamd?.stop(), clamd?.stop()])
  })

  it('relays clean mail rewritten, with the disclaimer and an archive copy, refuses spam, viruses and relay attempts', async () => {
    const gateway = await startGateway({
      RELAY_PORT: '0',
      SPAMD_HOST: spamd.host,
      SPAMD_PORT: String(spamd.port),
      CLAMD_HOST: clamd.host,
      CLAMD_PORT: String(clamd.port),
    })
    try {
      expect(await selfCheck(gateway)).toEqual([])
    } finally {
      await gateway.close()
    }
  })
})
