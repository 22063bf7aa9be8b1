/**
 * Group commit for directory entries. A renamed or removed file is durable only once its
 * directory is fsync'd, and one fsync costs about a millisecond here: one per message would cap
 * the queue at about a thousand messages a second. So every caller that renamed a file into a
 * directory waits for the next fsync of that directory that starts after its rename, and one
 * fsync serves everyone who renamed in the meantime.
 */
import { open } from 'node:fs/promises'

interface DirState {
  running: boolean
  /** Callers waiting for the fsync after the running one. */
  next: Array<{ resolve: () => void; reject: (err: unknown) => void }>
}

/** Coalesces directory fsyncs; see the file header. */
export class DirSync {
  readonly #dirs = new Map<string, DirState>()
  /** Directory fsyncs done, for the bench and tests. */
  syncs = 0

  /** Resolves once `dir` has been fsync'd after this call. */
  sync(dir: string): Promise<void> {
    let state = this.#dirs.get(dir)
    if (!state) this.#dirs.set(dir, (state = { running: false, next: [] }))
    return new Promise((resolve, reject) => {
      state.next.push({ resolve, reject })
      if (!state.running) void this.#run(dir, state)
    })
  }

  async #run(dir: string, state: DirState): Promise<void> {
    state.running = true
    while (state.next.length) {
      const batch = state.next.splice(0)
      try {
        const handle = await open(dir, 'r')
        try {
          await handle.sync()
        } finally {
          await handle.close()
        }
        this.syncs++
        for (const waiter of batch) waiter.resolve()
      } catch (err) {
        for (const waiter of batch) waiter.reject(err)
      }
    }
    state.running = false
    this.#dirs.delete(dir)
  }
}
