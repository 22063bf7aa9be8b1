/**
 * Offline DNSSEC signing of test zones with ldns (Debian's `ldnsutils`): one ECDSA P-256 key
 * (algorithm 13) per zone, used as both KSK and ZSK, NSEC denial of existence.
 *
 * The test zones hang under one signed parent, the anchor (`test.` by default), whose key is the
 * only trust anchor. The parent holds a delegation for every test zone, and a DS record for those
 * that are signed, so the validator walks a real chain of trust:
 *
 * - `'signed'`: DS in the parent, valid signatures (inception an hour ago, expiry in a week): secure.
 * - `'unsigned'`: NS but no DS, which the parent's signed NSEC proves: an insecure delegation.
 * - `'expired'`: DS in the parent, signatures that expired weeks ago: bogus.
 */
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { type TestZone, testZone, zoneFileText } from './zones.js'

const run = promisify(execFile)
const DAY = 86_400_000

/** A zone file ready to serve. */
export interface SignedZone {
  origin: string
  file: string
}

export interface SignedZones {
  zones: SignedZone[]
  /** A file with the anchor's DS record, for unbound's `trust-anchor-file`. */
  trustAnchorFile: string
}

/** `YYYYMMDDhhmmss` in UTC, the form ldns-signzone takes for `-i` and `-e`. */
const stamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)

async function keygen(dir: string, origin: string): Promise<{ base: string; ds: string }> {
  const { stdout } = await run('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', `${origin}.`], { cwd: dir })
  const base = join(dir, stdout.trim())
  const ds = (await readFile(`${base}.ds`, 'utf8')).trim().replace(/\s+IN\s+DS\s+/, ' 300 IN DS ')
  return { base, ds }
}

async function sign(dir: string, zone: TestZone, key: string, extra: readonly string[], expired: boolean): Promise<string> {
  const now = Date.now()
  const [inception, expiration] = expired ? [now - 30 * DAY, now - 20 * DAY] : [now - 3_600_000, now + 7 * DAY]
  const unsigned = join(dir, `${zone.origin}.zone`)
  await writeFile(unsigned, zoneFileText(zone, extra))
  const signed = `${unsigned}.signed`
  await run('ldns-signzone', ['-i', stamp(inception), '-e', stamp(expiration), '-f', signed, unsigned, key], { cwd: dir })
  return signed
}

/**
 * Signs `zones` under `anchor` in `dir` (see the file header). Each zone's origin must be below
 * the anchor, and no test zone may lie inside another.
 *
 * @example
 * ```ts
 * const { zones, trustAnchorFile } = await signTestZones(dir, [testZone('secure.test', records)], 'test')
 * ```
 */
export async function signTestZones(dir: string, zones: readonly TestZone[], anchor: string): Promise<SignedZones> {
  for (const zone of zones) {
    if (!zone.origin.endsWith(`.${anchor}`)) throw new Error(`test zone ${zone.origin} is not below the anchor ${anchor}`)
    if (zones.some((other) => other !== zone && zone.origin.endsWith(`.${other.origin}`)))
      throw new Error(`test zone ${zone.origin} is inside another test zone`)
  }
  const secured = zones.filter((zone) => (zone.security ?? 'signed') !== 'unsigned')
  const [anchorKey, ...keys] = await Promise.all([keygen(dir, anchor), ...secured.map((zone) => keygen(dir, zone.origin))])
  const children = await Promise.all(
    zones.map(async (zone): Promise<SignedZone> => {
      const index = secured.indexOf(zone)
      if (index < 0) {
        const file = join(dir, `${zone.origin}.zone`)
        await writeFile(file, zoneFileText(zone))
        return { origin: zone.origin, file }
      }
      return { origin: zone.origin, file: await sign(dir, zone, keys[index]!.base, [], zone.security === 'expired') }
    }),
  )
  const delegations = zones.flatMap((zone) => {
    const index = secured.indexOf(zone)
    return [`${zone.origin}. 300 IN NS ns.${anchor}.`, ...(index < 0 ? [] : [keys[index]!.ds])]
  })
  const parent = await sign(dir, testZone(anchor, []), anchorKey!.base, delegations, false)
  const trustAnchorFile = join(dir, 'trust-anchor.ds')
  await writeFile(trustAnchorFile, `${anchorKey!.ds}\n`)
  return { zones: [{ origin: anchor, file: parent }, ...children], trustAnchorFile }
}
