import { tsToMs } from '@temporalio/common/lib/time';
import type { Client } from '@temporalio/client';
import type { ContainerEvents } from './docker-events';

/** The steps between a spawn request and a ready sandbox, in order; each phase ends at its step. */
export const SPAWN_PHASES = [
  'API: request → admitted, workflow started',
  'admission: the workflow asked again (queued or late answers only)',
  'launch activity scheduled on the host queue',
  'launch: container created (beside the workspace)',
  'launch: container started (beside the clone)',
  'launch: clone done, state recorded',
  'state running committed',
] as const;

export type SpawnProfile = Record<(typeof SPAWN_PHASES)[number], number>;

/**
 * Where one spawn's time went, from Temporal's event times, the engine's container events and the
 * committed state change (all on this machine's clock), as milliseconds per phase. (An activity's
 * started event is written when it closes, so the launch is split by the engine's events instead.)
 * A warm sandbox was created before the spawn: its container phases are NaN and the launch's
 * whole time is in its last phase.
 */
export async function spawnProfile(
  temporal: Client,
  events: ContainerEvents,
  agentId: string,
  containerName: string,
  requestedAt: number,
  readyAt: number,
): Promise<SpawnProfile> {
  const history = (await temporal.workflow.getHandle(agentId).fetchHistory()).events ?? [];
  const scheduledIdOf = (activity: string): number | undefined =>
    history
      .find((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === activity)
      ?.eventId?.toNumber();
  const timeOf = (match: (event: (typeof history)[number]) => boolean): number => {
    const event = history.find(match);
    if (!event) throw new Error(`agent ${agentId}: an expected history event is missing`);
    return tsToMs(event.eventTime);
  };
  const slotScheduled = scheduledIdOf('requestSlot');
  const launchScheduled = scheduledIdOf('launchSandbox');
  const started = timeOf(
    (event) =>
      event.workflowExecutionStartedEventAttributes !== null &&
      event.workflowExecutionStartedEventAttributes !== undefined,
  );
  const steps = [
    requestedAt,
    started,
    // The API asks admission before it starts the workflow; the workflow asks only when that answer was not a slot
    // (else 0 ms).
    slotScheduled === undefined
      ? started
      : timeOf((event) => event.activityTaskCompletedEventAttributes?.scheduledEventId?.toNumber() === slotScheduled),
    timeOf((event) => event.eventId?.toNumber() === launchScheduled),
    events.at(containerName, 'create') ?? NaN,
    events.at(containerName, 'start') ?? NaN,
    timeOf((event) => event.activityTaskCompletedEventAttributes?.scheduledEventId?.toNumber() === launchScheduled),
    readyAt,
  ];
  const lastKnownBefore = (index: number): number =>
    steps
      .slice(0, index)
      .reverse()
      .find((at) => Number.isFinite(at)) ?? NaN;
  return Object.fromEntries(
    SPAWN_PHASES.map((phase, index) => [phase, (steps[index + 1] ?? NaN) - lastKnownBefore(index + 1)]),
  ) as SpawnProfile;
}
