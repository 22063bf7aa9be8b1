/**
 * Running the envelope hooks of a chain: `mailFrom` stage by stage (each sees the sender as the
 * ones before rewrote it), `rcptTo` per recipient and per address an earlier stage expanded it
 * to. A refusal is thrown with the refusing stage's name stamped on it; a stage that returns
 * something that is not an address is a `RelayError`.
 */
import { RelayError, SmtpError } from './errors.js'
import type { MessageImpl } from './message.js'
import type { Address, RcptVerdict, Stage } from './types.js'

/**
 * What the RCPT hooks made of one recipient.
 *
 * @category Testing
 */
export interface RcptResult {
  /** What the recipient became: itself, a rewrite, or an expansion. */
  readonly recipients: readonly Address[]
  /** True if a stage that declares `grantsRelay` granted relay permission. */
  readonly relay: boolean
  /** Reasons stages gave, for the log. */
  readonly reasons: readonly string[]
}

/** Calls `fn`, stamping the stage's name on an `SmtpError` it throws. */
export async function stamped<T>(stage: Stage, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof SmtpError && err.stage === undefined) err.stage = stage.name
    throw err
  }
}

/** Runs the `mailFrom` hooks in order, updating the envelope's sender as each one rewrites it. */
export async function runMailFrom(stages: readonly Stage[], tx: MessageImpl, from: Address | null): Promise<Address | null> {
  let current = from
  for (const stage of stages) {
    const result = await stamped(stage, () => stage.mailFrom!(tx, current))
    if (result) current = checkAddress(stage, result)
    tx.setEnvelope({ mailFrom: current, rcptTo: tx.envelope.rcptTo })
  }
  return current
}

/** Runs the `rcptTo` hooks for one recipient and each address it is rewritten or expanded to. */
export async function runRcptTo(stages: readonly Stage[], tx: MessageImpl, to: Address): Promise<RcptResult> {
  let current: readonly Address[] = [to]
  let relay = false
  const reasons: string[] = []
  for (const stage of stages) {
    const next: Address[] = []
    for (const rcpt of current) {
      const result = await stamped(stage, () => stage.rcptTo!(tx, rcpt))
      if (!result) next.push(rcpt)
      else if (!isVerdict(result)) next.push(...expansion(stage, result))
      else {
        if (result.reason) reasons.push(`${stage.name}: ${result.reason}`)
        if (result.relay) {
          if (!stage.grantsRelay)
            throw new RelayError('ERR_RELAY_UNDECLARED_GRANT', `stage "${stage.name}" granted relay without declaring grantsRelay`)
          relay = true
        }
        next.push(...(result.to ? expansion(stage, result.to) : [rcpt]))
      }
    }
    current = next
  }
  return { recipients: current, relay, reasons }
}

function isVerdict(value: RcptVerdict | Address | readonly Address[]): value is RcptVerdict {
  return !Array.isArray(value) && !('address' in value)
}

function checkAddress(stage: Stage, value: unknown): Address {
  const address = (value as Address | null)?.address
  if (typeof address !== 'string' || !address || /[\s<>]/.test(address)) {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}" returned an invalid address ${JSON.stringify(value)}`)
  }
  return value as Address
}

function expansion(stage: Stage, value: Address | readonly Address[]): Address[] {
  const list = Array.isArray(value) ? (value as readonly Address[]) : [value as Address]
  // An empty expansion would accept a recipient and deliver it nowhere.
  if (!list.length) throw new RelayError('ERR_RELAY_INVALID_STAGE', `stage "${stage.name}" expanded a recipient to nothing`)
  return list.map((a) => checkAddress(stage, a))
}
