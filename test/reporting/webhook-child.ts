/**
 * Reporting with webhooks in a process of its own, for the SIGKILL test. Environment: DATA_DIR,
 * WEBHOOK_URL, WEBHOOK_SECRET. Prints `READY`; on stdin `record <from> <count>` records that many
 * events (ids `ev-<n>`) and prints `RECORDED`.
 */
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createReporting } from '../../src/reporting/reporting.js'
import { openEventStore } from '../../src/reporting/store/file-store.js'
import { startWebhooks } from '../../src/reporting/webhooks/webhooks.js'

const dir = process.env.DATA_DIR!
const store = await openEventStore({ dir: join(dir, 'events') })
const reporting = createReporting({ store })
await startWebhooks({
  store,
  dir: join(dir, 'webhooks'),
  endpoints: [{ name: 'receiver', url: process.env.WEBHOOK_URL!, secret: process.env.WEBHOOK_SECRET! }],
  schedule: [0, 20, 20, 20, 20, 20, 20, 20, 20, 20],
})
console.log('READY')
for await (const line of createInterface({ input: process.stdin })) {
  const [command, from, count] = line.split(' ')
  if (command === 'record') {
    for (let n = Number(from); n < Number(from) + Number(count); n++) {
      reporting.record({
        type: 'delivered',
        id: `ev-${n}`,
        queueId: `Q${n}`,
        recipient: `r${n}@example.org`,
        response: '250 ok',
        sender: 'news@shop.example',
      })
    }
    console.log('RECORDED')
  }
}
