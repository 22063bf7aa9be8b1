/**
 * disclaimer: adds the organisation's disclaimer to outgoing mail. The text goes at the end of
 * every body text part (text/plain, and text/html before `</body>`, HTML-escaped), inside
 * multipart/mixed, /alternative and /related but never inside an attached message/rfc822 or an
 * attachment; a message with no body text gets a text part of its own. Signed or encrypted
 * messages (multipart/signed, multipart/encrypted, application/pkcs7-mime) pass untouched, and a
 * marker header makes the stage idempotent. Each part keeps its charset when it can hold the
 * disclaimer (else it becomes UTF-8) and a valid transfer encoding; everything else, attachments
 * included, comes out byte for byte. The message streams: memory does not grow with its size.
 *
 * Place it after the scanners (they judge what the sender wrote) and before any signer (DKIM,
 * S/MIME): it declares `modifies: 'body'`, so a pipeline refuses it after one.
 */
import { randomBytes } from 'node:crypto'
import type { MimeNode } from '@zone-eu/mailsplit'
import { domainKey, domainTable } from '../core/address.js'
import { RelayError } from '../core/errors.js'
import type { Message, Stage } from '../core/types.js'
import { editorTransform, type PartInfo, type PreparedDisclaimer, planPart, prepareDisclaimer } from '../mime/disclaimer-part.js'
import { mimeRewrite } from '../mime/mime-rewrite.js'

/**
 * One disclaimer.
 *
 * @category Stages
 */
export interface DisclaimerContent {
  /** Plain text, for text/plain parts (and, HTML-escaped, for text/html parts unless `html` is given). */
  readonly text: string
  /** An HTML fragment for text/html parts, inserted as is. Default: `text`, escaped, in a `<div class="disclaimer">`. */
  readonly html?: string
}

/**
 * Options of {@link disclaimer}.
 *
 * @category Stages
 */
export interface DisclaimerOptions {
  /** The disclaimer for every sender whose domain `domains` does not list. Omit it to add none for them. */
  readonly text?: string
  /** HTML for `text`; see {@link DisclaimerContent.html}. */
  readonly html?: string
  /** Per envelope-sender domain: its own disclaimer, or `false` for none. Mail from `<>` gets none. */
  readonly domains?: Readonly<Record<string, DisclaimerContent | false>>
  /** Chooses the disclaimer per message instead of `text` and `domains`; `undefined` for none. */
  readonly select?: (msg: Message) => DisclaimerContent | undefined
  /** Header field that marks a message as done, so that it never gets a second one. Default `X-Disclaimer`. */
  readonly marker?: string
}

const SEALED = new Set(['multipart/signed', 'multipart/encrypted', 'application/pkcs7-mime', 'application/x-pkcs7-mime'])
const CONTAINERS = new Set(['mixed', 'alternative', 'related'])
const CRLF = Buffer.from('\r\n')

let loading: Promise<{ libmime: typeof import('libmime')['default']; iconv: typeof import('iconv-lite') }> | undefined
const libs = () => (loading ??= Promise.all([import('libmime'), import('iconv-lite')]).then(([m, i]) => ({ libmime: m.default, iconv: i.default })))

/**
 * Creates the disclaimer stage.
 *
 * @example
 * ```ts
 * createRelay({
 *   stages: [relayPolicy(…), spamScan(…), disclaimer({
 *     text: 'This message is confidential. If you received it in error, please delete it.',
 *     domains: { 'subsidiary.example': { text: 'Subsidiary Ltd, registered in England, no. 1234567.' } },
 *   }), dkimSign(…)],
 *   transport,
 * })
 * ```
 *
 * @category Stages
 */
export function disclaimer(options: DisclaimerOptions): Stage {
  const choose = chooser(options)
  const marker = options.marker ?? 'X-Disclaimer'
  return {
    name: 'disclaimer',
    modifies: 'body',
    async data(msg, next) {
      const d = choose(msg)
      if (!d || msg.headers.has(marker)) return next()
      const { libmime, iconv } = await libs()
      const type = libmime.parseHeaderValue(msg.headers.get('content-type') || 'text/plain')
      const mediaType = type.value.toLowerCase()
      if (SEALED.has(mediaType) || mediaType.startsWith('message/')) return next()
      const disposition = libmime.parseHeaderValue(msg.headers.get('content-disposition') ?? '')
      const top: PartInfo = { html: mediaType === 'text/html', charset: type.params.charset, encoding: msg.headers.get('content-transfer-encoding') }
      const plan = (node: MimeNode) => (isBodyText(node) ? planPart(partInfo(node), d, iconv) : undefined)
      if (mediaType.startsWith('multipart/')) {
        if (!CONTAINERS.has(mediaType.slice(10))) return next()
        await msg.rewrite(mimeRewrite({ plan, fallbackPart: d.part }))
      } else if (
        /^text\/(plain|html)$/.test(mediaType) &&
        disposition.value.toLowerCase() !== 'attachment' &&
        !disposition.params.filename &&
        !type.params.name
      ) {
        const single = planPart(top, d, iconv)
        if (single.kind === 'skip') return next()
        if (single.kind === 'raw') msg.body.transform(editorTransform(single.edit(true)))
        else await msg.rewrite(mimeRewrite({ plan }))
      } else {
        wrapInMixed(msg, d.part)
      }
      msg.headers.add(marker, 'added')
      return next()
    },
  }
}

/** A body text part: text/plain or text/html, not an attachment, only inside mixed/alternative/related. */
function isBodyText(node: MimeNode): boolean {
  if ((node.contentType !== 'text/plain' && node.contentType !== 'text/html') || node.disposition === 'attachment' || node.filename) return false
  for (let parent = node.parentNode; parent; parent = parent.parentNode) if (!CONTAINERS.has(parent.multipart || '')) return false
  return true
}

function partInfo(node: MimeNode): PartInfo {
  return { html: node.contentType === 'text/html', charset: node.charset, encoding: node.encoding }
}

/** A single-part message without body text (a bare PDF): it becomes multipart/mixed {itself, disclaimer}. */
function wrapInMixed(msg: Message, part: Buffer): void {
  const boundary = `----=_disclaimer_${randomBytes(12).toString('hex')}`
  const fields = msg.headers.fields().filter((f) => /^content-/i.test(f.name))
  for (const name of new Set(fields.map((f) => f.name))) msg.headers.remove(name)
  msg.headers.append('Content-Type', `multipart/mixed; boundary="${boundary}"`)
  if (!msg.headers.has('mime-version')) msg.headers.append('MIME-Version', '1.0')
  const open = Buffer.concat([Buffer.from(`--${boundary}\r\n`), ...fields.map((f) => f.raw), CRLF])
  const close = Buffer.concat([CRLF, Buffer.from(`--${boundary}\r\n`), part, CRLF, Buffer.from(`--${boundary}--\r\n`)])
  msg.body.transform(async function* wrap(body) {
    yield open
    yield* body
    yield close
  })
}

/** A domain listed with `false`: no disclaimer for it, not even the default. */
const NONE = Symbol('no disclaimer')

function chooser(options: DisclaimerOptions): (msg: Message) => PreparedDisclaimer | undefined {
  // Weak: select() may return a new object per message.
  const prepared = new WeakMap<DisclaimerContent, PreparedDisclaimer>()
  const prepare = (content: DisclaimerContent) => {
    if (typeof content?.text !== 'string' || !content.text.trim()) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', 'disclaimer: every disclaimer needs a non-empty text')
    }
    let result = prepared.get(content)
    if (!result) prepared.set(content, (result = prepareDisclaimer(content.text, content.html)))
    return result
  }
  const { select } = options
  if (select)
    return (msg) => {
      const content = select(msg)
      return content && prepare(content)
    }
  if (options.text === undefined && !options.domains) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'disclaimer: give text, domains or select')
  const fallback = options.text === undefined ? undefined : prepare({ text: options.text, ...(options.html ? { html: options.html } : {}) })
  const byDomain = domainTable(
    Object.entries(options.domains ?? {}).map(([domain, c]) => [domain, c ? prepare(c) : NONE] as const),
    'disclaimer domains',
  )
  return (msg) => {
    const from = msg.envelope.mailFrom
    if (!from) return undefined
    const found = byDomain.get(domainKey(from.address))
    return found === NONE ? undefined : (found ?? fallback)
  }
}
