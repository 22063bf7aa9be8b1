/** Dates as mail header fields write them. */

let cachedSecond = -1
let cachedDate = ''

/** RFC 5322 date-time, e.g. `Sat, 28 Nov 2026 13:51:27 +0000` (formatted once per second). */
export function rfc5322Date(now = Date.now()): string {
  const second = Math.floor(now / 1000)
  if (second !== cachedSecond) {
    // toUTCString gives "Sat, 28 Nov 2026 13:51:27 GMT"; "+0000" is the non-obsolete zone.
    cachedDate = new Date(second * 1000).toUTCString().replace(/GMT$/, '+0000')
    cachedSecond = second
  }
  return cachedDate
}
