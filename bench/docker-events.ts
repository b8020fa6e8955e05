import type Docker from 'dockerode';

/**
 * The engine's own record of when containers were created, started and destroyed (its event
 * stream's nanosecond times), by container name: "container gone" is the moment the engine says so,
 * not when a poll noticed.
 */
export interface ContainerEvents {
  waitFor(name: string, action: 'create' | 'start' | 'destroy', timeoutMs?: number): Promise<number>;
  at(name: string, action: 'create' | 'start' | 'destroy'): number | undefined;
  stop(): void;
}

interface EngineEvent {
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
  timeNano?: number;
}

export async function watchContainerEvents(docker: Docker): Promise<ContainerEvents> {
  const seen = new Map<string, number>();
  const waiters = new Map<string, Array<(at: number) => void>>();
  const stream = (await docker.getEvents({
    filters: { type: ['container'], event: ['create', 'start', 'destroy'] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines.filter(Boolean)) {
      const event = JSON.parse(line) as EngineEvent;
      const name = event.Actor?.Attributes?.name;
      if (!name || !event.Action || event.timeNano === undefined) continue;
      const key = `${name}/${event.Action}`;
      const at = event.timeNano / 1e6;
      seen.set(key, at);
      for (const resolve of waiters.get(key) ?? []) resolve(at);
      waiters.delete(key);
    }
  });
  stream.on('error', () => undefined);
  return {
    at: (name, action) => seen.get(`${name}/${action}`),
    waitFor(name, action, timeoutMs = 120_000) {
      const key = `${name}/${action}`;
      const known = seen.get(key);
      if (known !== undefined) return Promise.resolve(known);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the engine reported no ${action} of ${name} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.set(key, [
          ...(waiters.get(key) ?? []),
          (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        ]);
      });
    },
    stop: () => stream.destroy(),
  };
}
