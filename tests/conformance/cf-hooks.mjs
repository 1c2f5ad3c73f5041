// Module resolve hook for loading @cloudflare/sandbox outside workerd:
//  - `cloudflare:workers` is mapped to a small stub (cf-stub.mjs);
//  - @cloudflare/containers uses extensionless relative ESM imports
//    (`./lib/container`), which Node refuses; retry those with `.js`.
export async function resolve(specifier, context, next) {
  if (specifier === 'cloudflare:workers')
    return { url: new URL('./cf-stub.mjs', import.meta.url).href, shortCircuit: true };
  try {
    return await next(specifier, context);
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && /^\.\.?\//.test(specifier) && !specifier.endsWith('.js'))
      return next(specifier + '.js', context);
    throw e;
  }
}
