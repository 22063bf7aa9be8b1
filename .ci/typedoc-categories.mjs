// A typedoc plugin: every export of the documented entry points must name its @category, so
// that the API reads in groups (Relay, Core, Stages, Transports …). Anything typedoc put in the
// default category is reported as a warning, which `npm run docs` treats as an error.
import { Converter } from 'typedoc'

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(
    Converter.EVENT_RESOLVE_END,
    (context) => {
      const fallback = app.options.getValue('defaultCategory')
      const modules = context.project.children?.length ? context.project.children : [context.project]
      for (const module of modules) {
        // With no @category anywhere typedoc makes no categories at all.
        const uncategorized = module.categories ? (module.categories.find((c) => c.title === fallback)?.children ?? []) : (module.children ?? [])
        for (const child of uncategorized) app.logger.warn(`${module.name}.${child.name} has no @category`)
      }
    },
    // After typedoc's CategoryPlugin (-200) has sorted the exports.
    -300,
  )
}
