/**
 * Telling machines from people on the tracking endpoints. Marked `machine: true` (and not counted
 * as human opens or clicks): HEAD requests (link checkers), requests within `window` ms of the
 * delivery (security scanners fetch every link as the message arrives), Apple Mail Privacy
 * Protection (its proxy fetches every pixel: Apple's 17.0.0.0/8 network, or the bare
 * `Mozilla/5.0` user agent it sends), and user agents that say they are bots or scanners.
 */
const SCANNER =
  /bot\b|crawler|spider|scanner|preview|barracuda|mimecast|proofpoint|safelinks|urldefense|trendmicro|forcepoint|python-requests|curl\/|wget\/|go-http-client|java\/|okhttp/i

/** Whether a request looks like a machine's. */
export function isMachine(request: { method: string; userAgent?: string; ip?: string; since?: number }, window: number): boolean {
  if (request.method === 'HEAD') return true
  if (request.since !== undefined && request.since < window) return true
  const ua = request.userAgent?.trim() ?? ''
  if (ua === '' || ua === 'Mozilla/5.0' || SCANNER.test(ua)) return true
  const ip = request.ip?.replace(/^::ffff:/, '') ?? ''
  return ip.startsWith('17.')
}
