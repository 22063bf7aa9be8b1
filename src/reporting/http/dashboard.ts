/**
 * The dashboard page: per day and per tag, sent, delivered, bounce, complaint, open, click and
 * unsubscribe figures as a table and a bar chart (inline SVG, no script, no external asset), and
 * the events of one message (`?message=<queue id or Message-ID>`). Every number on the page is
 * read from the event store's queries, in cells marked with `data-*` attributes for tests.
 */
import type { StatsRow } from '../store/aggregates.js'
import type { EventStore } from '../store/file-store.js'

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const pct = (x: number) => `${(x * 100).toFixed(1)}%`
const COLUMNS: ReadonlyArray<[keyof StatsRow, string, 'n' | '%']> = [
  ['sent', 'Sent', 'n'],
  ['delivered', 'Delivered', 'n'],
  ['bounceRate', 'Bounce rate', '%'],
  ['complaintRate', 'Complaint rate', '%'],
  ['openRate', 'Open rate', '%'],
  ['clickRate', 'Click rate', '%'],
  ['unsubscribed', 'Unsubscribes', 'n'],
]

function table(title: string, by: string, rows: readonly StatsRow[]): string {
  const head = `<tr><th>${title}</th>${COLUMNS.map(([, label]) => `<th>${label}</th>`).join('')}</tr>`
  const body = rows
    .map(
      (r) =>
        `<tr data-${by}="${escapeHtml(r.key)}"><td>${escapeHtml(r.key)}</td>${COLUMNS.map(([k, , f]) => `<td data-field="${k}">${f === '%' ? pct(r[k] as number) : String(r[k])}</td>`).join('')}</tr>`,
    )
    .join('')
  return `<table id="by-${by}">${head}${body}</table>`
}

function chart(rows: readonly StatsRow[]): string {
  const max = Math.max(1, ...rows.map((r) => r.sent))
  const w = 24
  const bars = rows
    .map((r, i) => {
      const h = Math.round((r.sent / max) * 100)
      const d = Math.round((r.delivered / max) * 100)
      return `<g><title>${escapeHtml(r.key)}: ${r.sent} sent, ${r.delivered} delivered</title><rect x="${i * w}" y="${100 - h}" width="${w - 4}" height="${h}" fill="#ccd"/><rect x="${i * w}" y="${100 - d}" width="${w - 4}" height="${d}" fill="#36c"/></g>`
    })
    .join('')
  return `<svg id="chart" width="${Math.max(1, rows.length) * w}" height="100" role="img" aria-label="sent and delivered per day">${bars}</svg>`
}

/** The page's HTML. */
export async function renderDashboard(store: EventStore, message?: string): Promise<string> {
  const days = store.stats({ by: 'day' })
  const tags = store.stats({ by: 'tag' })
  let events = ''
  if (message) {
    const list = await store.eventsOf(message)
    events = `<h2>Events of ${escapeHtml(message)}</h2><table id="events"><tr><th>Time</th><th>Type</th><th>Recipient</th><th>Detail</th></tr>${list
      .map((e) => {
        const detail = e.type === 'bounced' ? `${e.bounceType} ${e.status}` : e.type === 'clicked' ? e.url : e.type === 'delivered' ? e.response : ''
        return `<tr data-type="${e.type}"><td>${new Date(e.time).toISOString()}</td><td>${e.type}</td><td>${escapeHtml(e.recipient ?? '')}</td><td>${escapeHtml(detail)}</td></tr>`
      })
      .join('')}</table>`
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>Mail reporting</title><style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body><h1>Mail reporting</h1>${chart(days)}<h2>Per day</h2>${table('Day', 'day', days)}<h2>Per tag</h2>${table('Tag', 'tag', tags)}<form><label>Message <input name="message" value="${escapeHtml(message ?? '')}"></label> <button>Show events</button></form>${events}</body></html>`
}
