import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, expect, it } from 'vitest'
import { Spool } from '../../src/core/body/spool.js'
import { createPipeline, type Stage } from '../../src/index.js'
import { memoryTransport, testMessage } from '../../src/testing/index.js'

const chunks = (n: number, size: number) => Readable.from(Array.from({ length: n }, (_, i) => Buffer.alloc(size, 97 + (i % 26))))

describe('Spool', () => {
  it('keeps a small body in memory and reads it any number of times', async () => {
    const spool = await Spool.from(chunks(3, 100), { memoryLimit: 1000 })
    expect(spool.onDisk).toBe(false)
    expect(spool.size).toBe(300)
    expect((await buffer(spool.open())).equals(await buffer(spool.open()))).toBe(true)
  })

  it('spills to a 0600 temp file past the limit and removes it on dispose', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-spool-'))
    try {
      const spool = await Spool.from(chunks(10, 1000), { memoryLimit: 2500, dir })
      expect(spool.onDisk).toBe(true)
      const files = await readdir(dir)
      expect(files).toHaveLength(1)
      const content = await buffer(spool.open())
      expect(content.length).toBe(10_000)
      expect(content.subarray(1000, 1001).toString()).toBe('b')
      await spool.dispose()
      expect(await readdir(dir)).toEqual([])
      expect(() => spool.open()).toThrow(/disposed/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('removes its temp file when the source fails', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-spool-'))
    try {
      const failing = Readable.from(
        (async function* () {
          yield Buffer.alloc(5000)
          throw new Error('client gone')
        })(),
      )
      await expect(Spool.from(failing, { memoryLimit: 100, dir })).rejects.toThrow('client gone')
      expect(await readdir(dir)).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('passes every chunk to onChunk in order as it spools, on disk with writes behind the reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-spool-'))
    try {
      const seen: Buffer[] = []
      // 3 MiB in 64 KiB chunks: more is queued than the writer lets run ahead.
      const spool = await Spool.from(chunks(48, 65536), { memoryLimit: 100_000, dir }, (chunk) => seen.push(chunk))
      expect(spool.onDisk).toBe(true)
      const content = await buffer(spool.open())
      expect(content.length).toBe(48 * 65536)
      expect(Buffer.concat(seen).equals(content)).toBe(true)
      expect(content.subarray(47 * 65536, 47 * 65536 + 1).toString()).toBe('v')
      await spool.dispose()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('writes a first chunk that is over the limit by itself to the temp file whole, and every chunk after it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-spool-'))
    try {
      const first = Buffer.alloc(5000, 'x')
      const spool = await Spool.from(Readable.from([first, Buffer.from('tail')]), { memoryLimit: 1000, dir })
      expect(spool.onDisk).toBe(true)
      const content = await buffer(spool.open())
      expect([content.length, content.subarray(-4).toString()]).toEqual([5004, 'tail'])
      const alone = await Spool.from(Readable.from([first]), { memoryLimit: 1000, dir })
      expect((await buffer(alone.open())).equals(first)).toBe(true)
      await Promise.all([spool.dispose(), alone.dispose()])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('fails and removes its temp file when onChunk throws', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-spool-'))
    try {
      let n = 0
      const failing = Spool.from(chunks(10, 1000), { memoryLimit: 2500, dir }, () => {
        if (++n === 5) throw new Error('hasher broke')
      })
      await expect(failing).rejects.toThrow('hasher broke')
      expect(await readdir(dir)).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('a transaction aborted while a stage spools its body to disk', () => {
  it('has removed the temp file by the time data() returns its outcome', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-spool-'))
    try {
      let spooling!: () => void
      const started = new Promise<void>((resolve) => (spooling = resolve))
      const reader: Stage = {
        name: 'reads-whole-body',
        async data(msg, next) {
          spooling()
          await msg.body.spool()
          return next()
        },
      }
      const pipeline = createPipeline({ stages: [reader], transport: memoryTransport() })
      const tx = await pipeline.begin((await testMessage()).session, { address: 'a@example.com' }, { spool: { dir, memoryLimit: 1024 } })
      await tx.addRecipient({ address: 'b@example.org' })
      // A body that has spilled to a file and is still arriving when the client goes away.
      const body = new PassThrough()
      body.write(`Subject: big\r\n\r\n${'x'.repeat(64 * 1024)}\r\n`)
      const outcome = tx.data({ raw: body })
      await started
      while (!(await readdir(dir)).length) await new Promise((r) => setImmediate(r))
      tx.abort(new Error('the client left'))
      expect((await outcome).aborted).toBe(true)
      expect(await readdir(dir)).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
