/** One Server-Sent Event as a client sees it. */
export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

/**
 * Reads an SSE stream with fetch until it ends, or until `stopAfter` events or `stop` (then disconnects,
 * as a client that loses its connection). Returns the events and whether the server ended the stream.
 */
export async function readSse(
  url: string,
  headers: Record<string, string>,
  stopAfter = Infinity,
  stop?: AbortSignal,
): Promise<{ status: number; events: SseEvent[]; ended: boolean }> {
  const controller = new AbortController();
  // A caller that gives up disconnects, as a client closing its EventSource.
  const signal = stop ? AbortSignal.any([controller.signal, stop]) : controller.signal;
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal });
  if (!response.ok || !response.body) return { status: response.status, events: [], ended: true };
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { status: response.status, events, ended: true };
      buffer += decoder.decode(value, { stream: true });
      let boundary = buffer.indexOf('\n\n');
      while (boundary >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        boundary = buffer.indexOf('\n\n');
        const fields = block.split('\n').filter((line) => !line.startsWith(':'));
        const field = (name: string): string | null =>
          fields.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2) ?? null;
        const data = field('data');
        if (data === null) continue;
        events.push({ id: field('id'), event: field('event') ?? 'message', data });
        if (events.length >= stopAfter) {
          controller.abort();
          return { status: response.status, events, ended: false };
        }
      }
    }
  } catch (error) {
    if (signal.aborted) return { status: response.status, events, ended: false };
    throw error;
  }
}
