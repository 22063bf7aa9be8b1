/** Checking MIME output with an independent parser (Python's email package, see mime-parts.py). */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** One part as Python's email package sees it. */
export interface ParsedPart {
  path: string
  type: string
  charset: string | null
  cte: string | null
  filename: string | null
  defects: string[]
  sha256?: string
  text?: string
}

export const PYTHON = '/usr/bin/python3'
const SCRIPT = fileURLToPath(new URL('./mime-parts.py', import.meta.url))

/** Parses several messages in one Python run; keys as given. */
export function parseMime(messages: Record<string, Buffer>): Record<string, ParsedPart[]> {
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-mime-'))
  try {
    const names = Object.keys(messages)
    const files = names.map((name, i) => {
      const file = join(dir, `${i}.eml`)
      writeFileSync(file, messages[name]!)
      return file
    })
    const run = spawnSync(PYTHON, [SCRIPT, ...files], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    if (run.status !== 0) throw new Error(`mime-parts.py failed: ${run.stderr}`)
    const parsed = JSON.parse(run.stdout) as Record<string, ParsedPart[]>
    return Object.fromEntries(names.map((name, i) => [name, parsed[files[i]!]!]))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A fixture of test/fixtures/mime. */
export function fixture(name: string): Buffer {
  return readFileSync(new URL(`../fixtures/mime/${name}`, import.meta.url))
}

/** True if the bytes contain a line ending other than CRLF. */
export function hasBareLineEnding(raw: Buffer): boolean {
  return /\r(?!\n)|(?<!\r)\n/.test(raw.toString('latin1'))
}

/** The longest line, in bytes. */
export function longestLine(raw: Buffer): number {
  return Math.max(
    ...raw
      .toString('latin1')
      .split('\r\n')
      .map((l) => l.length),
  )
}

/** A DSN as Python's email package reads it (see dsn-parse.py). */
export interface ParsedDsn {
  headers: Record<string, string>
  type: string
  reportType: string | null
  defects: string[]
  parts: string[]
  human?: string
  /** Per-message fields (Reporting-MTA, Original-Envelope-Id …), lower-case names. */
  message?: Record<string, string>
  /** Per-recipient fields (Final-Recipient, Action, Status …), one object per recipient. */
  recipients?: Record<string, string>[]
  returned?: { type: string; messageId: string | null; body?: string | null }
}

const DSN_SCRIPT = fileURLToPath(new URL('./dsn-parse.py', import.meta.url))

/** Parses DSNs in one Python run. */
export function parseDsn(...messages: Buffer[]): ParsedDsn[] {
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-dsn-'))
  try {
    const files = messages.map((raw, i) => {
      const file = join(dir, `${i}.eml`)
      writeFileSync(file, raw)
      return file
    })
    const run = spawnSync(PYTHON, [DSN_SCRIPT, ...files], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    if (run.status !== 0) throw new Error(`dsn-parse.py failed: ${run.stderr}`)
    const parsed = JSON.parse(run.stdout) as Record<string, ParsedDsn>
    return files.map((f) => parsed[f]!)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
