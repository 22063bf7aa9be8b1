/**
 * DNS and DANE together, as the MX transport will use them: TLSA records published in a signed
 * zone, fetched through the validating resolver (authenticated), checked against the chain a
 * real TLS server presents for that MX host.
 */
import { once } from 'node:events'
import { connect, createServer } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDnsClient, verifyDane } from '../../../src/transports/mx/index.js'
import { makeTestPki, type TestCert, type TestPki } from '../../helpers/dns/certs.js'
import { haveValidatingResolver, startValidatingResolver, type ValidatingResolver } from '../../helpers/dns/resolver.js'
import { a, mx, testZone, tlsa } from '../../helpers/dns/zones.js'
import { havePeer } from '../../helpers/peers.js'

describe.runIf(haveValidatingResolver() && havePeer('openssl', 'apt-get install -y openssl'))(
  'DANE with TLSA records from a validating resolver',
  () => {
    let pki: TestPki
    let resolver: ValidatingResolver

    beforeAll(async () => {
      pki = await makeTestPki()
      resolver = await startValidatingResolver([
        testZone('example.test', [
          mx('example.test', 10, 'mx.example.test'),
          a('mx.example.test', '127.0.0.1'),
          tlsa('_25._tcp.mx.example.test', 3, 1, 1, await pki.tlsa(pki.leaf, 1, 1)),
          tlsa('_25._tcp.mx.example.test', 2, 0, 1, await pki.tlsa(pki.root, 0, 1)),
        ]),
      ])
    })
    afterAll(async () => {
      await resolver?.stop()
      await pki?.cleanup()
    })

    async function peerChain(chain: TestCert[]) {
      const server = createServer({ key: chain[0]!.key, cert: chain.map((c) => c.pem).join('') }, (socket) => socket.end())
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const socket = connect({
        host: '127.0.0.1',
        port: (server.address() as { port: number }).port,
        servername: 'mx.example.test',
        rejectUnauthorized: false,
      })
      try {
        await once(socket, 'secureConnect')
        return socket.getPeerCertificate(true)
      } finally {
        socket.destroy()
        await new Promise((done) => server.close(done))
      }
    }

    it('authenticates the MX host whose chain matches the authenticated TLSA records, and refuses an impostor', async () => {
      const dns = createDnsClient({ server: resolver.address })
      const [host] = (await dns.mx('example.test')).answers
      const records = await dns.tlsa(`_25._tcp.${host!.exchange}`)
      expect(records).toMatchObject({ authenticated: true, canonicalName: '_25._tcp.mx.example.test' })
      expect(records.answers).toHaveLength(2)

      const hostnames = [host!.exchange]
      expect(verifyDane(records.answers, await peerChain([pki.leaf, pki.intermediate, pki.root]), { hostnames })).toMatchObject({
        verdict: 'match',
        matched: { usage: 3 },
      })
      expect(verifyDane(records.answers, await peerChain([pki.directLeaf, pki.root]), { hostnames })).toMatchObject({
        verdict: 'match',
        matched: { usage: 2 },
      })
      expect(verifyDane(records.answers, await peerChain([pki.other]), { hostnames }).verdict).toBe('mismatch')
    })
  },
)
