/**
 * A private Postfix for the bench: its own config_directory, queue_directory and data_directory
 * under a temp dir, listening on one loopback port and relaying everything from 127.0.0.0/8 to
 * `relayhost = [127.0.0.1]:<sink>` (no DNS, no local delivery, no flow control, logs to
 * /dev/null). Postfix stores each message (fsync'd) before its 250, then delivers it, so its rate
 * is taken from the first message sent to the moment its queue is empty again.
 *
 * Needs Debian's postfix and root (Postfix's daemons drop to the `postfix` user).
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { waitForPort } from './load.js'

export interface PostfixInstance {
  port: number
  /** Resolves once no message is in the incoming, active or deferred queue. */
  idle(): Promise<void>
  stop(): void
}

/** True if a private Postfix can run here. */
export function postfixAvailable(): boolean {
  const ok = (cmd: string) => spawnSync('sh', ['-c', cmd]).status === 0
  return process.getuid?.() === 0 && ok('command -v postfix') && ok('id postfix') && ok('test -r /etc/postfix/master.cf')
}

export async function startPostfix(port: number, relayPort: number, concurrency: number): Promise<PostfixInstance> {
  const root = mkdtempSync(join(tmpdir(), 'relaychain-bench-postfix-'))
  chmodSync(root, 0o755)
  const etc = join(root, 'etc')
  const spool = join(root, 'spool')
  const data = join(root, 'data')
  for (const dir of [etc, spool, data]) mkdirSync(dir)
  chownSync(data, Number(spawnSync('id', ['-u', 'postfix']).stdout), Number(spawnSync('id', ['-g', 'postfix']).stdout))
  writeFileSync(
    join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${spool}`,
      `data_directory = ${data}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = postfix-bench.localdomain',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'local_recipient_maps =',
      'alias_maps =',
      'alias_database =',
      `relayhost = [127.0.0.1]:${relayPort}`,
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      'in_flow_delay = 0s',
      'smtpd_client_connection_count_limit = 0',
      'smtpd_client_connection_rate_limit = 0',
      `default_destination_concurrency_limit = ${concurrency}`,
      `smtp_destination_concurrency_limit = ${concurrency}`,
      'default_process_limit = 200',
      'disable_dns_lookups = yes',
      'smtp_host_lookup = native',
      'message_size_limit = 0',
      'biff = no',
      'maillog_file_prefixes = /dev/null',
      'maillog_file = /dev/null',
      '',
    ].join('\n'),
  )
  // Debian's master.cf, with the port-25 listener moved to our port and nothing chrooted.
  copyFileSync('/etc/postfix/master.cf', join(etc, 'master.cf'))
  const master = readFileSync(join(etc, 'master.cf'), 'utf8')
    .split('\n')
    .map((line) => {
      if (/^smtp\s+inet\s/.test(line)) return `127.0.0.1:${port} inet n - n - - smtpd`
      const fields = line.split(/\s+/)
      if (!line.startsWith('#') && fields.length >= 8 && fields[4] === 'y') fields[4] = 'n'
      return line.startsWith('#') || fields.length < 8 ? line : fields.join(' ')
    })
    .join('\n')
  writeFileSync(join(etc, 'master.cf'), master)
  const started = spawnSync('postfix', ['-c', etc, 'start'], { encoding: 'utf8' })
  if (started.status !== 0) throw new Error(`postfix start failed (${userInfo().username}): ${started.stderr}`)
  await waitForPort(port)
  const queued = () => ['incoming', 'active', 'deferred', 'maildrop'].some((q) => hasFiles(join(spool, q)))
  return {
    port,
    async idle() {
      while (queued()) await new Promise((resolve) => setTimeout(resolve, 20))
    },
    stop() {
      spawnSync('postfix', ['-c', etc, 'stop'])
      rmSync(root, { recursive: true, force: true })
    },
  }
}

function hasFiles(dir: string): boolean {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).some((entry) => entry.isFile())
  } catch {
    return false
  }
}
