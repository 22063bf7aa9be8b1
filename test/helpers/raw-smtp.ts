/** The raw SMTP client lives with the public test helpers, which use it for `checkOpenRelay()`. */
export { RawSmtp } from '../../src/testing/raw-smtp.js'
