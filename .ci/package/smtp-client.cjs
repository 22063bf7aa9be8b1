// A minimal SMTP client for the package check: sends one message to 127.0.0.1:<port> and
// resolves with the server's reply to the final dot. Plain CommonJS with node:net only, so that
// the scratch project needs nothing but relaychain.
const { connect } = require('node:net')

module.exports = function sendOne(port, { from, to, message }) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const script = [null, 'EHLO client.test', `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'DATA', `${message.replace(/\r?\n/g, '\r\n')}\r\n.`, 'QUIT']
    let step = 0
    let buffer = ''
    let last = ''
    socket.setEncoding('utf8')
    socket.setTimeout(20_000, () => socket.destroy(new Error(`no reply after: ${script[step] ?? 'connect'}`)))
    socket.on('error', reject)
    socket.on('data', (chunk) => {
      buffer += chunk
      let end = buffer.indexOf('\r\n')
      while (end >= 0) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        end = buffer.indexOf('\r\n')
        if (line[3] === '-') continue // a multi-line reply goes on
        const expected = script[step] === 'DATA' ? '3' : '2'
        if (line[0] !== expected) return socket.destroy(new Error(`${script[step] ?? 'greeting'}: ${line}`))
        if (step === 5) last = line
        step++
        if (step === script.length) return (socket.end(), resolve(last))
        socket.write(`${script[step]}\r\n`)
      }
    })
  })
}
