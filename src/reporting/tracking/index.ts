/**
 * Click and open tracking, the parts a `tracking()` stage is built from: link rewriting in HTML
 * and plain text that changes nothing but the rewritten values (and the inserted open pixel), the
 * same for one MIME part with its transfer encoding and charset kept and for a whole message as a
 * streaming body transform, and the signed tokens a redirector verifies. Nothing here is exported from the package root yet.
 */

export { NOTRACK_ATTRIBUTE, UNSUBSCRIBE_ATTRIBUTE } from './link-rules.js'
export type { LinkCandidate, LinkInfo, RewriteHtmlOptions, RewriteHtmlResult, RewrittenLink } from './rewrite-html.js'
export { pixelTag, rewriteHtml } from './rewrite-html.js'
export type { MimePartInfo, MimePartResult, TransferEncoding } from './rewrite-part.js'
export { rewriteMimePart } from './rewrite-part.js'
export type { RewriteTextOptions, RewriteTextResult } from './rewrite-text.js'
export { rewriteText } from './rewrite-text.js'
export type { TokenPayload, TrackingKey } from './token.js'
export { signToken, verifyToken } from './token.js'
export type { TrackMessageOptions } from './track-message.js'
export { trackMessage } from './track-message.js'
export { decodeBase64, decodeQuotedPrintable, encodeBase64, encodeQuotedPrintable } from './transfer-encoding.js'
export type { UnsubscribeCandidate } from './unsubscribe.js'
export { isUnsubscribeLink, listUnsubscribeUrls } from './unsubscribe.js'
