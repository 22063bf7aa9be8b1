/** Small stages tests put in front of the stage under test. */
import type { Message, Stage } from '../../src/index.js'

/** A stage that appends `text` to the body (after an optional `edit`), as a footer or disclaimer would. */
export function appending(name: string, text: string, edit: (msg: Message) => void = () => {}): Stage {
  return {
    name,
    modifies: 'body',
    async data(msg, next) {
      edit(msg)
      msg.body.transform(async function* (source) {
        yield* source
        yield Buffer.from(text)
      })
      return next()
    },
  }
}
