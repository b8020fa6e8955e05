/** Polls `check` until it holds or `timeoutMs` passes; the assertions that follow say what was expected. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
