/**
 * Reports are untrusted mail: whatever their bytes, parsing ends quickly. Each case below used
 * to be (or easily is) quadratic for a regular expression without bounds.
 */
import { describe, expect, it } from 'vitest'
import { parseBounce } from '../../src/reporting/bounces/parse-bounce.js'
import { parseComplaint } from '../../src/reporting/complaints/parse-complaint.js'

const daemon = 'From: MAILER-DAEMON@mx.example\nTo: alice@example.com\nSubject: Undelivered Mail Returned to Sender\n'
const groups = Array.from({ length: 20_000 }, (_, i) => `Final-Recipient: rfc822; u${i}@example.org\nAction: failed\nStatus: 5.1.1`).join('\n\n')

const cases: Record<string, string> = {
  'a 500 KB line without spaces': `${daemon}\n550 ${'x'.repeat(500_000)}\n`,
  'half a million "<" in HTML': `${daemon}Content-Type: text/html\n\n<p>550 ${'<'.repeat(500_000)}\n`,
  'thirty thousand unclosed <style> tags': `${daemon}Content-Type: text/html\n\n${'<style a'.repeat(30_000)}\n`,
  'twenty thousand addresses in a notice': `${daemon}\nCould not be delivered:\n${Array.from({ length: 20_000 }, (_, i) => ` u${i}@example.org x`).join('\n')}\n550 user unknown\n`,
  'a 200 KB To and Original-Rcpt-To': `From: fbl@isp.example\nTo: ${'y'.repeat(200_000)}\nContent-Type: multipart/report; report-type=feedback-report; boundary=x\n\n--x\nContent-Type: message/feedback-report\n\nOriginal-Rcpt-To: ${'z'.repeat(200_000)}\n--x--\n`,
  'a DSN of twenty thousand recipients beside a 100 KB notice': `${daemon}Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\n${'Your message could not be delivered. '.repeat(3_000)}\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n${groups}\n--b--\n`,
}

describe('hostile reports', () => {
  it.each(Object.entries(cases))('parses %s in under 3 s', async (_, raw) => {
    const start = performance.now()
    await parseBounce(raw)
    await parseComplaint(raw)
    expect(performance.now() - start).toBeLessThan(3_000)
  })

  it('classifies every recipient of a DSN that lists twenty thousand', async () => {
    const report = await parseBounce(cases['a DSN of twenty thousand recipients beside a 100 KB notice']!)
    expect(report?.recipients).toHaveLength(20_000)
    expect(report?.recipients.every((r) => r.classification.class === 'hard')).toBe(true)
  })
})
