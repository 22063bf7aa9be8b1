/**
 * pkijs and asn1js, loaded on first use: they are large, and an application that imports
 * relaychain without S/MIME stages should not pay for them. Both are optional peer dependencies:
 * the S/MIME stages check for them when they are built (`requireFeature('smime')`).
 */
import { loadFeature } from '../shared/optional.js'

type Pkijs = typeof import('pkijs')
type Asn1js = typeof import('asn1js')

let loading: Promise<{ pkijs: Pkijs; asn1js: Asn1js }> | undefined

/** The two modules, imported once. */
export function loadPkijs(): Promise<{ pkijs: Pkijs; asn1js: Asn1js }> {
  loading ??= loadFeature('smime', () => Promise.all([import('pkijs'), import('asn1js')])).then(([pkijs, asn1js]) => ({ pkijs, asn1js }))
  return loading
}
