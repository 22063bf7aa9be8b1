/**
 * rewriteHtml on small documents, one rule each: which links are offered, what `rewrite` gets,
 * how new values are written, where the pixel goes, and that nothing else changes.
 */
import { describe, expect, it } from 'vitest'
import { isUnsubscribeLink, type LinkInfo, listUnsubscribeUrls, pixelTag, rewriteHtml } from '../../../src/reporting/tracking/index.js'

const T = (link: LinkInfo) => `https://t.example/c/${link.index}`
const rewrite = (html: string, options: Partial<Parameters<typeof rewriteHtml>[1]> = {}) => rewriteHtml(html, { rewrite: T, ...options })

describe('rewriteHtml', () => {
  it('rewrites <a> and <area> hrefs, keeping the quote style and quoting unquoted values', () => {
    const html = `<a href="https://a.example/1">1</a><A HREF='https://a.example/2'>2</A><a href=https://a.example/3>3</a><map><area href="https://a.example/4" alt="x"></map>`
    expect(rewrite(html).html).toBe(
      `<a href="https://t.example/c/0">1</a><A HREF='https://t.example/c/1'>2</A><a href="https://t.example/c/2">3</a><map><area href="https://t.example/c/3" alt="x"></map>`,
    )
  })

  it('hands rewrite the decoded value and writes the new one attribute-escaped', () => {
    const seen: string[] = []
    const result = rewriteHtml(`<a href="https://a.example/?x=1&amp;y=2&#38;z=&quot;3&quot;">x</a><a href='https://a.example/'>y</a>`, {
      rewrite: (link) => (seen.push(link.url), `https://t.example/?a=1&b="2"&c='3'`),
    })
    expect(seen).toEqual(['https://a.example/?x=1&y=2&z="3"', 'https://a.example/'])
    expect(result.html).toBe(
      `<a href="https://t.example/?a=1&amp;b=&quot;2&quot;&amp;c='3'">x</a><a href='https://t.example/?a=1&amp;b=&quot;2&quot;&amp;c=&#39;3&#39;'>y</a>`,
    )
  })

  it('leaves mailto:, tel:, sms:, javascript:, data:, fragments, empty and absent hrefs alone', () => {
    const html = [
      '<a href="mailto:a@example.com">m</a>',
      '<a href="TEL:+1555">t</a>',
      '<a href="sms:+1555">s</a>',
      '<a href="javascript:void(0)">j</a>',
      '<a href=" java\tscript:alert(1)">j2</a>',
      '<a href="data:text/html,x">d</a>',
      '<a href="#top">f</a>',
      '<a href="">e</a>',
      '<a href>n</a>',
      '<a name="x">a</a>',
    ].join('')
    const offered: string[] = []
    expect(rewriteHtml(html, { rewrite: (l) => (offered.push(l.url), 'https://t.example/') }).html).toBe(html)
    expect(offered).toEqual([])
  })

  it('never touches <link>, <base>, <img src>, comments, MSO conditionals with VML, script, style, title or textarea', () => {
    const html = [
      '<head><title><a href="https://x.example/title">t</a></title><link href="https://x.example/css" rel="stylesheet">',
      '<style>a[href="https://x.example/style"]{}</style><script>var a = \'<a href="https://x.example/script">\'</script></head><body>',
      '<!-- <a href="https://x.example/comment">c</a> -->',
      '<!--[if mso]><v:roundrect href="https://x.example/vml"></v:roundrect><a href="https://x.example/mso">o</a><![endif]-->',
      '<textarea><a href="https://x.example/textarea"></a></textarea><img src="https://x.example/img.png">',
      '<![CDATA[<a href="https://x.example/cdata">]]>',
      '<!--[if !mso]><!-- --><a href="https://x.example/visible">v</a><!--<![endif]-->',
      '</body>',
    ].join('\n')
    const result = rewrite(html)
    expect(result.links.map((l) => l.url)).toEqual(['https://x.example/visible'])
    expect(result.html).toBe(html.replace('"https://x.example/visible"', '"https://t.example/c/0"'))
  })

  it('tracks links in downlevel-revealed conditionals (<![if !mso]>), which every other client shows', () => {
    const html = '<![if !mso]><a href="https://x.example/dl">d</a><![endif]>'
    expect(rewrite(html).html).toBe('<![if !mso]><a href="https://t.example/c/0">d</a><![endif]>')
  })

  it('resolves relative links against <base href>, and leaves them alone without one', () => {
    const body =
      '<a href="orders/1?a=1&amp;b=2">o</a><a href="/account">a</a><a href="//cdn.example/x.pdf">c</a><a href="../faq#q">f</a><a href="mailto:x@example.com">m</a>'
    const withBase = rewrite(`<head><base href="https://shop.example/mail/"></head>${body}`)
    expect(withBase.links.map((l) => l.url)).toEqual([
      'https://shop.example/mail/orders/1?a=1&b=2',
      'https://shop.example/account',
      'https://cdn.example/x.pdf',
      'https://shop.example/faq#q',
    ])
    expect(rewrite(body).links).toEqual([])
    // A base that is not an absolute URL is no base.
    expect(rewrite(`<base href="/relative/">${body}`).links).toEqual([])
  })

  it('leaves links marked data-relay-notrack or data-unsubscribe, and those skip() declines, without using an index', () => {
    const html =
      '<a href="https://a.example/1" data-relay-notrack>1</a><a href="https://a.example/u" data-unsubscribe="1">u</a><a class="nt" href="https://a.example/2">2</a><a href="https://a.example/3">3</a>'
    const result = rewrite(html, { skip: (l) => l.attributes.class === 'nt' })
    expect(result.links.map((l) => [l.index, l.url])).toEqual([[0, 'https://a.example/3']])
  })

  it('counts a link rewrite declined (undefined) in the index and leaves it as written', () => {
    const html = '<a href="https://a.example/1">Unsubscribe</a><a href="https://a.example/2">Shop</a>'
    const result = rewriteHtml(html, { rewrite: (l) => (isUnsubscribeLink(l) ? undefined : T(l)) })
    expect(result.html).toBe('<a href="https://a.example/1">Unsubscribe</a><a href="https://t.example/c/1">Shop</a>')
  })

  it('gives rewrite the link text, image alt text included, whitespace collapsed', () => {
    const texts: Array<string | undefined> = []
    rewriteHtml(
      '<a href="https://a.example/">  Read\n  the <b>post</b> &amp; more </a><a href="https://b.example/"><img src="x" alt="Logo"></a><area href="https://c.example/" alt="c">',
      {
        rewrite: (l) => void texts.push(l.text),
      },
    )
    expect(texts).toEqual(['Read the post & more', 'Logo', undefined])
  })

  it('uses the first href of an element and ignores data-href and href= inside other values', () => {
    const html = '<a title="href=https://no.example/" data-href="https://no.example/2" href="https://yes.example/" href="https://dup.example/">x</a>'
    const result = rewrite(html)
    expect(result.links.map((l) => l.url)).toEqual(['https://yes.example/'])
    expect(result.html).toBe(html.replace('"https://yes.example/"', '"https://t.example/c/0"'))
  })

  it('inserts the pixel before the last real </body>, not one inside a comment, else at the end', () => {
    const tag = pixelTag('https://t.example/o/1')
    expect(rewrite('<body><p>x</p></body><!-- </body> --></html>', { pixel: 'https://t.example/o/1' }).html).toBe(
      `<body><p>x</p>${tag}</body><!-- </body> --></html>`,
    )
    const fragment = rewrite('<p>no body</p>\r\n', { pixel: 'https://t.example/o/1' })
    expect(fragment).toMatchObject({ html: `<p>no body</p>\r\n${tag}`, pixel: true })
    expect(rewrite('<p>x</p>').pixel).toBe(false)
    expect(pixelTag('https://t.example/o/?a=1&b="2"')).toContain('src="https://t.example/o/?a=1&amp;b=&quot;2&quot;"')
  })

  it('keeps CRLF, very long lines and non-ASCII text byte for byte', () => {
    const long = `<p>${'é€😀 '.repeat(2000)}</p>`
    const html = `<html>\r\n<body>\r\n${long}<a href="https://a.example/x">x</a>${long}\r\n</body>\r\n</html>\r\n`
    expect(rewrite(html).html).toBe(html.replace('https://a.example/x', 'https://t.example/c/0'))
  })

  it('tracks http(s) links as written, even a bare http:// placeholder, with inner spaces percent-encoded', () => {
    expect(rewrite('<a href="http://">x</a><a href="https://a.example/a b">y</a>').links.map((l) => l.url)).toEqual([
      'http://',
      'https://a.example/a%20b',
    ])
  })

  it('records spans that splice the original back', () => {
    const html = '<a href = "https://a.example/">x</a> <a href=https://b.example/>y</a>'
    const { links } = rewrite(html)
    expect(links.map((l) => l.original)).toEqual(['"https://a.example/"', 'https://b.example/'])
    expect(links.map((l) => html.slice(l.start, l.end))).toEqual(links.map((l) => l.original))
  })
})

describe('unsubscribe recognition', () => {
  it('reads List-Unsubscribe URLs', () => {
    expect(listUnsubscribeUrls('<https://news.example/u/42?x=1>,\r\n <mailto:u-42@news.example?subject=unsubscribe>')).toEqual([
      'https://news.example/u/42?x=1',
      'mailto:u-42@news.example?subject=unsubscribe',
    ])
    expect(listUnsubscribeUrls(undefined)).toEqual([])
  })

  it('recognises the List-Unsubscribe URL, unsubscribe text, paths and merge tags', () => {
    const header = '<https://news.example/l/42>, <mailto:l@news.example>'
    expect(isUnsubscribeLink({ url: 'https://news.example/l/42' }, header)).toBe(true)
    expect(isUnsubscribeLink({ url: 'https://news.example/a', text: 'Click here to unsubscribe.' })).toBe(true)
    expect(isUnsubscribeLink({ url: 'https://news.example/a', text: 'Se désabonner' })).toBe(true)
    expect(isUnsubscribeLink({ url: 'https://news.example/a', text: 'Opt out' })).toBe(true)
    expect(isUnsubscribeLink({ url: 'https://news.example/unsubscribe?u=1' })).toBe(true)
    expect(isUnsubscribeLink({ url: 'https://news.example/optout/1' })).toBe(true)
    expect(isUnsubscribeLink({ url: '*|UNSUB|*' })).toBe(true)
    expect(isUnsubscribeLink({ url: 'https://shop.example/sale', text: 'Subscribe to our sale' })).toBe(false)
    expect(isUnsubscribeLink({ url: 'https://news.example/abonnement', text: 'Mon abonnement' })).toBe(false)
  })
})
