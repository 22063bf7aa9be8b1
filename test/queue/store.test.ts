/**
 * The directory store on its own: what is on disk after each step, what a restart makes of a
 * torn or corrupt file, and the lock that keeps a second process out.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { dirStore, durableQueue, RelayError, smtpTransport } from '../../src/index.js'
import { afterTest } from '../helpers/after-test.js'
import { startQueue } from '../helpers/queue.js'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-store-'))
  afterTest(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Every file under `dir`, relative, sorted. */
async function files(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name).slice(dir.length + 1))
  }
  return out.sort()
}

describe('queue directory store', () => {
  it('keeps one file per entry in its due bucket, and nothing in tmp/', async () => {
    const dir = await tempDir()
    const q = await startQueue({ dir, sink: { data: () => '451 4.3.0 Later' } })
    afterTest(() => q.close())
    const id = await q.send()
    expect(await files(dir)).toEqual(['.lock', expect.stringMatching(new RegExp(`^due/\\d+/${id}$`))])
    await q.queue.runDue()
    const [file] = (await files(dir)).filter((f) => f.includes(id))
    const text = await readFile(join(dir, file!), 'utf8')
    expect(text.split('\n')[0]).toMatch(/^RELAYCHAIN-QUEUE 1 \d{15} \d{10}$/)
    expect(text).toContain('Hello through the queue.')
    // The journal: one record per attempt, after the content.
    expect(text.trimEnd().split('\n').at(-1)).toMatch(/^\{"type":"outcome","recipients":\[0\],"status":"deferred"/)
  })

  it('refuses a second store on the same directory with ERR_RELAY_QUEUE_LOCKED, in this process and in another', async () => {
    const dir = await tempDir()
    const first = dirStore(dir)
    await first.open()
    afterTest(() => first.close())
    const err = await dirStore(dir)
      .open()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RelayError)
    expect((err as RelayError).code).toBe('ERR_RELAY_QUEUE_LOCKED')
    expect((err as RelayError).message).toContain(`in use by process ${process.pid}`)

    // Another process: it must be refused too, and the lock must survive its attempt.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import('${new URL('../../src/index.ts', import.meta.url).pathname}').then(({ dirStore }) => dirStore(${JSON.stringify(dir)}).open()).then(() => console.log('OPENED'), (e) => console.log(e.code))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
    expect(line).toBe('ERR_RELAY_QUEUE_LOCKED')
    expect(await readFile(join(dir, '.lock'), 'utf8')).toBe(String(process.pid))
  })

  it('takes over the lock of a process that died', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
    const pid = child.pid!
    child.kill('SIGKILL')
    await once(child, 'exit')
    await writeFile(join(dir, '.lock'), String(pid))
    const store = dirStore(dir)
    await store.open()
    afterTest(() => store.close())
    expect(await readFile(join(dir, '.lock'), 'utf8')).toBe(String(process.pid))
  })

  it('removes half-written files on start: their clients never got a 250', async () => {
    const dir = await tempDir()
    await mkdir(join(dir, 'tmp'), { recursive: true })
    await writeFile(join(dir, 'tmp', 'HALF.123.1'), 'RELAYCHAIN-QUEUE 1 000')
    const store = dirStore(dir)
    await store.open()
    afterTest(() => store.close())
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })

  it('drops a journal line cut short by a crash and delivers the entry once', async () => {
    const dir = await tempDir()
    const q = await startQueue({ dir, sink: { data: () => '451 4.3.0 Later' } })
    const id = await q.send()
    await q.queue.runDue()
    await q.queue.close()
    const [file] = (await files(dir)).filter((f) => f.includes(id))
    await appendFile(join(dir, file!), '{"type":"outcome","recipients":[0],"status":"deliv')
    await q.sink.close()

    const again = await startQueue({ dir })
    afterTest(() => again.close())
    again.clock.advance(10 * 60_000)
    await again.queue.runDue()
    expect(again.sink.messages).toHaveLength(1)
    expect(again.of('delivered')).toEqual([expect.objectContaining({ id, attempt: 2 })])
    expect(await again.entries()).toEqual([])
  })

  it('moves a corrupt file to quarantine with an error event, and keeps serving the rest', async () => {
    const dir = await tempDir()
    const q = await startQueue({ dir })
    afterTest(() => q.close())
    const bucket = (await readdir(join(dir, 'due')))[0] ?? String(q.clock() - (q.clock() % 10_000))
    await mkdir(join(dir, 'due', bucket), { recursive: true })
    await writeFile(join(dir, 'due', bucket, 'BROKEN1'), 'RELAYCHAIN-QUEUE 1 000000000000010 0000000005\n{"id"')
    await writeFile(join(dir, 'due', bucket, 'BROKEN2'), 'not a queue file at all, but long enough to have a first line of the right size\n')
    const id = await q.send()
    await q.queue.runDue()
    expect(q.sink.messages).toHaveLength(1)
    expect(q.of('delivered')).toEqual([expect.objectContaining({ id })])
    expect((await readdir(join(dir, 'quarantine'))).map((f) => f.split('.')[0]).sort()).toEqual(['BROKEN1', 'BROKEN2'])
    expect(
      q
        .of('error')
        .map((e) => e.message)
        .sort(),
    ).toEqual(['queue entry moved to quarantine: header is not JSON', 'queue entry moved to quarantine: not a queue entry (first line)'])
  })

  it('refuses to start without a directory or with a transport that is not one', () => {
    expect(() => durableQueue({ deliver: smtpTransport({ host: '127.0.0.1' }) })).toThrow(/needs dir or store/)
    expect(() => durableQueue({ dir: '/tmp/x', deliver: {} as never })).toThrow(/needs a deliver transport/)
  })
})
