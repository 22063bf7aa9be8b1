/**
 * Preloaded with `node --import` to make packages look uninstalled, for the tests of optional
 * peer dependencies: `require.resolve()` and `import()` of a package named in
 * RELAYCHAIN_HIDE_PACKAGES (comma-separated) fail as they do when it is not in node_modules.
 */
import Module, { register } from 'node:module'

const hidden = (process.env.RELAYCHAIN_HIDE_PACKAGES ?? '').split(',').filter(Boolean)
const isHidden = (specifier) => hidden.some((name) => specifier === name || specifier.startsWith(`${name}/`))

const resolveFilename = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (isHidden(request)) throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' })
  return resolveFilename.call(this, request, ...rest)
}

const hook = `
let hidden = []
export function initialize(data) { hidden = data }
export async function resolve(specifier, context, next) {
  if (hidden.some((name) => specifier === name || specifier.startsWith(name + '/')))
    throw Object.assign(new Error("Cannot find package '" + specifier + "'"), { code: 'ERR_MODULE_NOT_FOUND' })
  return next(specifier, context)
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`, { data: hidden })
