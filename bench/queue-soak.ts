/**
 * The queue's crash test as a long soak: `npm run soak` (KILLS=3000 by default). Prints progress
 * every 50 kills and the counts at the end; exits 1 if anything acknowledged was lost, arrived
 * half, or was repeated beyond what was in flight at the kills.
 */
import { crashLoop } from '../test/helpers/crash-loop.js'

const kills = Number(process.env.KILLS ?? 3000)
console.log(`queue soak: ${kills} SIGKILLs under load`)
const counts = await crashLoop(kills, Math.random, (line) => console.log(`  ${line}`))
console.log(JSON.stringify(counts, null, 2))
const ok = counts.lost === 0 && counts.half === 0 && counts.duplicates <= counts.inFlightAtKills
console.log(ok ? 'OK: nothing acknowledged lost, nothing half, duplicates only from deliveries in flight' : 'FAILED')
process.exitCode = ok ? 0 : 1
