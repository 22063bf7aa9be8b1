/**
 * Guards for the places where relaychain reaches into smtp-server's internals. Each patched or
 * replaced method is compared, whole, with the source it was written against (white space
 * ignored): any change in a new smtp-server release fails closed with an error that names the
 * method and the installed version, instead of silently dropping what the new code does.
 */
import { createRequire } from 'node:module'
import { RelayError } from '../../core/errors.js'
import { sourceHash } from '../../shared/source-hash.js'

export { sourceHash }

/** The smtp-server version the guarded sources come from. */
export const GUARDED_VERSION = '3.21.6'

let installed: string | undefined

/** The installed smtp-server version, for error messages. */
export function installedVersion(): string {
  if (installed !== undefined) return installed
  try {
    const require = createRequire(import.meta.url)
    installed = (require('smtp-server/package.json') as { version?: string }).version ?? 'unknown'
  } catch {
    installed = 'unknown'
  }
  return installed
}

/**
 * Throws `ERR_RELAY_INCOMPATIBLE_SERVER` unless `fn` is exactly the code one of `hashes` was taken
 * from (smtp-server ships an ESM and a CommonJS build, whose sources differ in import names).
 */
export function checkSource(name: string, fn: unknown, hashes: readonly string[]): void {
  if (hashes.includes(sourceHash(fn))) return
  throw new RelayError(
    'ERR_RELAY_INCOMPATIBLE_SERVER',
    `smtp-server ${installedVersion()}: ${name} is not the code relaychain was written against (smtp-server ${GUARDED_VERSION}); ` +
      'install the smtp-server version relaychain declares. If you bundle your application, mark smtp-server as external ' +
      '(esbuild --external:smtp-server, webpack externals): bundlers rewrite its source.',
  )
}
