/**
 * verifyDane() against real certificates made with openssl (test/helpers/dns/certs.ts), with
 * association data computed by openssl too: DANE-EE by key and by certificate, DANE-TA through
 * a chain a real TLS handshake delivers, names, dates, anchors absent from the chain, forged
 * chains, and records that do not count for SMTP.
 */
import { once } from 'node:events'
import { connect, createServer, type DetailedPeerCertificate } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isUsableTlsaRecord, type TlsaRecord, verifyDane } from '../../../src/transports/mx/index.js'
import { makeTestPki, type TestCert, type TestPki } from '../../helpers/dns/certs.js'
import { havePeer } from '../../helpers/peers.js'

const DAY = 86_400_000
const MX = ['mx.example.test']

describe.runIf(havePeer('openssl', 'apt-get install -y openssl'))('verifyDane', () => {
  let pki: TestPki
  beforeAll(async () => {
    pki = await makeTestPki()
  })
  afterAll(() => pki?.cleanup())

  const record = async (usage: number, cert: TestCert, selector: 0 | 1, matchingType: 0 | 1 | 2): Promise<TlsaRecord> => ({
    usage,
    selector,
    matchingType,
    data: await pki.tlsa(cert, selector, matchingType),
  })

  /** The chain a TLS client sees from a server that sends `chain` (its own certificate first). */
  async function handshake(chain: TestCert[]): Promise<DetailedPeerCertificate> {
    const server = createServer({ key: chain[0]!.key, cert: chain.map((c) => c.pem).join('') }, (socket) => socket.end())
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    const socket = connect({ host: '127.0.0.1', port, servername: 'mx.example.test', rejectUnauthorized: false })
    try {
      await once(socket, 'secureConnect')
      return socket.getPeerCertificate(true)
    } finally {
      socket.destroy()
      await new Promise((done) => server.close(done))
    }
  }

  describe('DANE-EE(3)', () => {
    it('matches 3 1 1 (SHA-256 of the key) and refuses a different certificate for the same name', async () => {
      const tlsa = [await record(3, pki.leaf, 1, 1)]
      expect(verifyDane(tlsa, [pki.leaf.der])).toMatchObject({ verdict: 'match', matched: tlsa[0] })
      expect(verifyDane(tlsa, [pki.other.der], { hostnames: MX })).toMatchObject({ verdict: 'mismatch' })
    })

    it('matches 3 0 1 (SHA-256 of the certificate), 3 0 0 (the certificate itself) and 3 1 2 (SHA-512 of the key)', async () => {
      for (const tlsa of [await record(3, pki.leaf, 0, 1), await record(3, pki.leaf, 0, 0), await record(3, pki.leaf, 1, 2)]) {
        expect(verifyDane([tlsa], [pki.leaf.der]).verdict).toBe('match')
        expect(verifyDane([tlsa], [pki.directLeaf.der]).verdict).toBe('mismatch')
      }
    })

    it('ignores names and validity dates', async () => {
      const tlsa = [await record(3, pki.leaf, 1, 1)]
      expect(verifyDane(tlsa, [pki.leaf.der], { hostnames: ['somewhere.else.test'], now: Date.now() + 365 * DAY }).verdict).toBe('match')
    })

    it('takes the chain from a TLS handshake (PeerCertificate) and matches its first certificate only', async () => {
      const peer = await handshake([pki.leaf, pki.intermediate])
      expect(verifyDane([await record(3, pki.leaf, 1, 1)], peer).verdict).toBe('match')
      expect(verifyDane([await record(3, pki.intermediate, 1, 1)], peer).verdict).toBe('mismatch')
    })
  })

  describe('DANE-TA(2)', () => {
    it('matches a chain (CA → leaf) from a TLS handshake via the CA, by key or by certificate', async () => {
      const peer = await handshake([pki.directLeaf, pki.root])
      for (const tlsa of [await record(2, pki.root, 1, 1), await record(2, pki.root, 0, 1)]) {
        expect(verifyDane([tlsa], peer, { hostnames: MX })).toMatchObject({ verdict: 'match', matched: tlsa })
      }
    })

    it('follows intermediates, in any order, up to the anchor (root or intermediate)', async () => {
      const chain = [pki.leaf.der, pki.root.der, pki.intermediate.der]
      expect(verifyDane([await record(2, pki.root, 1, 1)], chain, { hostnames: MX }).verdict).toBe('match')
      expect(verifyDane([await record(2, pki.intermediate, 0, 2)], chain, { hostnames: MX }).verdict).toBe('match')
    })

    it('checks the name against the reference names: SAN, a whole-label wildcard, never a deeper one', async () => {
      const tlsa = [await record(2, pki.root, 1, 1)]
      const chain = [pki.leaf.der, pki.intermediate.der, pki.root.der]
      expect(verifyDane(tlsa, chain, { hostnames: ['example.test', 'mx.example.test.'] }).verdict).toBe('match')
      expect(verifyDane(tlsa, chain, { hostnames: ['a.pool.example.test'] }).verdict).toBe('match')
      expect(verifyDane(tlsa, chain, { hostnames: ['a.b.pool.example.test'] })).toMatchObject({
        verdict: 'mismatch',
        reason: expect.stringMatching(/not for a\.b\.pool/),
      })
      expect(verifyDane(tlsa, chain, { hostnames: ['mx.other.test'] }).verdict).toBe('mismatch')
      expect(verifyDane(tlsa, chain).verdict).toBe('mismatch')
    })

    it('checks validity dates below the anchor', async () => {
      const tlsa = [await record(2, pki.root, 1, 1)]
      const chain = [pki.leaf.der, pki.intermediate.der, pki.root.der]
      expect(verifyDane(tlsa, chain, { hostnames: MX }).verdict).toBe('match')
      expect(verifyDane(tlsa, chain, { hostnames: MX, now: Date.now() + 60 * DAY })).toMatchObject({
        verdict: 'mismatch',
        reason: expect.stringMatching(/expired/),
      })
      expect(verifyDane(tlsa, chain, { hostnames: MX, now: new Date(Date.now() - 2 * DAY) }).verdict).toBe('mismatch')
    })

    it('needs the anchor in the chain, unless the record holds it in full (2 0 0, 2 1 0)', async () => {
      const chain = [pki.leaf.der, pki.intermediate.der] // root not sent
      expect(verifyDane([await record(2, pki.root, 1, 1)], chain, { hostnames: MX }).verdict).toBe('mismatch')
      expect(verifyDane([await record(2, pki.root, 0, 0)], chain, { hostnames: MX }).verdict).toBe('match')
      expect(verifyDane([await record(2, pki.root, 1, 0)], chain, { hostnames: MX }).verdict).toBe('match')
      expect(verifyDane([await record(2, pki.root, 1, 0)], [pki.other.der], { hostnames: MX }).verdict).toBe('mismatch')
    })

    it('is not fooled by an anchor appended to a chain it did not sign, nor by a CA that is not a CA', async () => {
      const tlsa = [await record(2, pki.root, 1, 1)]
      expect(verifyDane(tlsa, [pki.other.der, pki.root.der], { hostnames: MX }).verdict).toBe('mismatch')
      const sneaky = [pki.sneakyLeaf.der, pki.notCa.der, pki.intermediate.der, pki.root.der]
      expect(verifyDane(tlsa, sneaky, { hostnames: MX })).toMatchObject({ verdict: 'mismatch', reason: expect.stringMatching(/not a CA/) })
    })

    it('does not let a DANE-TA record match the server certificate itself', async () => {
      expect(verifyDane([await record(2, pki.leaf, 1, 1)], [pki.leaf.der, pki.intermediate.der], { hostnames: MX }).verdict).toBe('mismatch')
    })
  })

  describe('usable records', () => {
    it("answers 'no-usable-records' when only PKIX-TA(0)/PKIX-EE(1) or malformed records exist (TLS is still required)", async () => {
      const pkix = [await record(0, pki.root, 1, 1), await record(1, pki.leaf, 1, 1)]
      expect(verifyDane(pkix, [pki.leaf.der, pki.intermediate.der, pki.root.der], { hostnames: MX })).toMatchObject({
        verdict: 'no-usable-records',
        reason: expect.stringMatching(/TLS is still required/),
      })
      const malformed: TlsaRecord[] = [
        { usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(31) },
        { usage: 3, selector: 2, matchingType: 1, data: Buffer.alloc(32) },
        { usage: 3, selector: 1, matchingType: 3, data: Buffer.alloc(32) },
        { usage: 4, selector: 1, matchingType: 1, data: Buffer.alloc(32) },
        { usage: 3, selector: 0, matchingType: 0, data: Buffer.alloc(0) },
      ]
      expect(malformed.some(isUsableTlsaRecord)).toBe(false)
      expect(verifyDane(malformed, [pki.leaf.der]).verdict).toBe('no-usable-records')
      expect(verifyDane([], [pki.leaf.der]).verdict).toBe('no-usable-records')
    })

    it('decides on the usable records alone when both kinds are present', async () => {
      const good = await record(3, pki.leaf, 1, 1)
      expect(verifyDane([await record(1, pki.leaf, 1, 1), good], [pki.leaf.der])).toMatchObject({ verdict: 'match', matched: good })
      expect(verifyDane([await record(1, pki.other, 1, 1), await record(3, pki.directLeaf, 1, 1)], [pki.other.der]).verdict).toBe('mismatch')
    })

    it('refuses an empty or unparsable chain', async () => {
      const tlsa = [await record(3, pki.leaf, 1, 1)]
      expect(verifyDane(tlsa, [])).toMatchObject({ verdict: 'mismatch', reason: 'the server sent no certificate' })
      expect(verifyDane(tlsa, [Buffer.from('not a certificate')])).toMatchObject({ verdict: 'mismatch' })
    })
  })
})
