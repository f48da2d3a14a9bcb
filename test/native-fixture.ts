/** Helpers shared by the native shim's tests. */

/**
 * "Name:code" of what `fn` throws, or "ok". Names, not constructors: the addon's errors come
 * from another realm than jest's.
 */
export function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    const e = err as { name?: string; code?: string };
    return `${e.name}:${e.code}`;
  }
}
