/** A discard SMTP server for the bench when Postfix's smtp-sink is not installed. */
import { SMTPServer } from 'smtp-server'

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  disableReverseLookup: true,
  logger: false,
  maxClients: 1000,
  onData(stream, _session, callback) {
    stream.on('end', () => callback())
    stream.resume()
  },
})
server.listen(Number(process.argv[2]), '127.0.0.1')
