// The tests' window into a call (window.__sz): only when a test switched it on before the
// page's scripts ran (Playwright's add_init_script sets window.__szDebug = true).

/** Make `value` reachable as window.__sz[name] for tests; a no-op on a normal page. */
export function register(name, value) {
  if (window.__szDebug !== true) return;
  const hook = window.__sz || (window.__sz = {});
  hook[name] = value;
  if (!hook.connections) {
    // every RTCPeerConnection of the page's call, old and new ones during a recovery
    Object.defineProperty(hook, 'connections', {
      get: () => (hook.call ? hook.call.connections : []),
    });
  }
}
