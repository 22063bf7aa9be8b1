import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createPipeline, fileTransport } from '../../src/index.js'
import { testMessage } from '../../src/testing/index.js'
import { appending } from '../helpers/stages.js'

const EML = 'Subject: stored\r\n\r\nbody\r\n'
let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relaychain-file-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('fileTransport', () => {
  it('writes <id>.<n>.eml with the exact message and a JSON sidecar with the envelope', async () => {
    const msg = await testMessage({ from: 'alice@example.com', to: ['bob@example.org'], eml: EML })
    const report = await fileTransport({ dir }).send(msg)
    expect(report.accepted.map((a) => a.address)).toEqual(['bob@example.org'])
    const files = (await readdir(dir)).sort()
    expect(files).toEqual([`${msg.id}.1.eml`, `${msg.id}.1.json`])
    expect(await readFile(join(dir, files[0]!), 'utf8')).toBe(EML)
    const record = JSON.parse(await readFile(join(dir, files[1]!), 'utf8')) as Record<string, unknown>
    expect(record).toMatchObject({ id: msg.id, mailFrom: 'alice@example.com', rcptTo: ['bob@example.org'], client: { address: '127.0.0.1' } })
  })

  it('delivers into a Maildir new/ with a Return-Path field', async () => {
    const msg = await testMessage({ from: null, eml: EML })
    await fileTransport({ dir, format: 'maildir' }).send(msg)
    expect((await readdir(dir)).sort()).toEqual(['cur', 'new', 'tmp'])
    const [name] = await readdir(join(dir, 'new'))
    expect(await readFile(join(dir, 'new', name!), 'utf8')).toBe(`Return-Path: <>\r\n${EML}`)
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })

  it('writes CRLF line endings even when a stage produced a bare LF', async () => {
    const sloppy = appending('sloppy', 'added\nline\r')
    await createPipeline({ stages: [sloppy], transport: fileTransport({ dir }) }).deliver(await testMessage({ eml: EML }))
    const eml = (await readdir(dir)).find((f) => f.endsWith('.eml'))!
    expect(await readFile(join(dir, eml), 'utf8')).toBe('Subject: stored\r\n\r\nbody\r\nadded\r\nline\r\n')
  })
})
