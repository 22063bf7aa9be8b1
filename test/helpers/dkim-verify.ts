/**
 * The independent verifier for DKIM and ARC: Debian's python3-dkim (dkimpy), run with
 * /usr/bin/python3, answering its DNS TXT queries from the records the test passes (nothing is
 * resolved for real). dkimpy turns LF into CRLF before verifying, so every result also says
 * whether the message had a bare CR or LF.
 */
import { spawn } from 'node:child_process'
import { havePeer } from './peers.js'

export const PYTHON = '/usr/bin/python3'

/** True if python3-dkim is usable; skips (or, under RELAYCHAIN_REQUIRE_PEERS=1, fails) otherwise. */
export function haveDkimpy(): boolean {
  return havePeer(PYTHON, 'apt-get install -y python3-dkim', ['-c', 'import dkim'])
}

export interface SignatureCheck {
  /** dkimpy's verdict for this DKIM-Signature field. */
  ok: boolean
  /** The signature's tags (d, s, a, c, h, bh, t …), whitespace removed. */
  tags: Record<string, string>
  /** What dkimpy logged when it failed. */
  log: string
}

export interface Verification {
  /** One entry per DKIM-Signature field, top to bottom. */
  signatures: SignatureCheck[]
  /** dkimpy's arc_verify: cv is 'pass', 'fail' or 'none'. */
  arc: { cv: string; comment: string; instances: number }
  /** True if the message has a CR or LF that is not part of CRLF. */
  bareLineEndings: boolean
}

const SCRIPT = `
import sys, json, base64, logging, io, dkim
from dkim.util import parse_tag_value
req = json.load(sys.stdin)
records = {k.rstrip('.').lower(): v for k, v in req['records'].items()}
def dnsfunc(name, timeout=5):
    value = records.get(name.decode().rstrip('.').lower())
    return value.encode() if value is not None else None
out = []
for raw in req['messages']:
    msg = base64.b64decode(raw)
    signatures = []
    d = dkim.DKIM(msg)
    fields = [v for (n, v) in d.headers if n.lower() == b'dkim-signature']
    for i, value in enumerate(fields):
        log = io.StringIO()
        logger = logging.getLogger('v%d' % len(signatures))
        logger.handlers = [logging.StreamHandler(log)]
        logger.setLevel(logging.DEBUG)
        checker = dkim.DKIM(msg, logger=logger)
        try:
            ok = checker.verify(idx=i, dnsfunc=dnsfunc)
        except Exception as e:
            ok = False
            log.write(repr(e))
        tags = {k.decode(): b''.join(v.split()).decode() for k, v in parse_tag_value(value).items()}
        signatures.append({'ok': bool(ok), 'tags': tags, 'log': log.getvalue()})
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    out.append({'signatures': signatures, 'arc': {'cv': cv.decode(), 'comment': comment, 'instances': len(results)}})
json.dump(out, sys.stdout)
`

/**
 * Verifies every DKIM signature and the ARC chain of each message. `records` maps DNS names
 * (`sel._domainkey.example.test`) to TXT record text.
 */
export async function verifyMessages(messages: readonly Buffer[], records: Readonly<Record<string, string>>): Promise<Verification[]> {
  const child = spawn(PYTHON, ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout.on('data', (d: Buffer) => stdout.push(d))
  child.stderr.on('data', (d: Buffer) => stderr.push(d))
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve))
  child.stdin.end(JSON.stringify({ records, messages: messages.map((m) => m.toString('base64')) }))
  const code = await exited
  if (code !== 0) throw new Error(`dkimpy exited ${code}: ${Buffer.concat(stderr).toString()}`)
  const results = JSON.parse(Buffer.concat(stdout).toString()) as Array<Omit<Verification, 'bareLineEndings'>>
  return results.map((r, i) => ({ ...r, bareLineEndings: /\r(?!\n)|(?<!\r)\n/.test(messages[i]!.toString('latin1')) }))
}

/** {@link verifyMessages} for one message. */
export async function verifyMessage(message: Buffer, records: Readonly<Record<string, string>>): Promise<Verification> {
  const [result] = await verifyMessages([message], records)
  return result!
}
