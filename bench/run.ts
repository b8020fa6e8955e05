import os from 'node:os';
import { createDockerClient } from '../platform/docker';
import { linkInstances } from '../tests/helpers/federation';
import { createRepository } from '../tests/helpers/git-repo';
import { benchModel } from './bench-model';
import { burst, type BurstFigures } from './burst';
import { watchContainerEvents } from './docker-events';
import { FEDERATED_PHASES, federatedSpawnKillRounds } from './federated-agents';
import { startBenchInstance, waitForWarmPool } from './harness';
import { testConfig } from '../tests/helpers/instance';
import { idleStreamLoad, type IdleStreamFigures } from './idle-streams';
import { historyGrowth, spawnKillRounds, statusQueryLatency } from './local-agents';
import { SPAWN_PHASES, type SpawnProfile } from './spawn-profile';
import { distribution, percentile, type Distribution } from './stats';
import { BARE_TURN_PHASES, TURN_PHASES, turnOverhead } from './turns';
import { measureVerification, type VerificationFigures } from './verification';

/** How much each figure measures: `full` is the README's run, `smoke` the test suite's (every figure, tiny counts). */
export interface BenchScale {
  name: 'full' | 'smoke';
  spawnRounds: number;
  federatedRounds: number;
  statusQueries: number;
  historyTurns: number;
  /** Turns of the agent whose turns are timed against the bare loop. */
  overheadTurns: number;
  queuedMs: number;
  burstAgents: number;
  verificationSeconds: number;
  /** Warm sandboxes of the pooled instance. */
  poolSize: number;
  /** Idle SSE streams and idle live sessions (each), and how long PostgreSQL's query rate is measured. */
  idleStreams: number;
  idleMeasureMs: number;
}

export const SCALES: Record<BenchScale['name'], BenchScale> = {
  full: {
    name: 'full',
    spawnRounds: 30,
    federatedRounds: 15,
    statusQueries: 200,
    historyTurns: 10,
    overheadTurns: 30,
    queuedMs: 30_000,
    burstAgents: 200,
    verificationSeconds: 2,
    poolSize: 2,
    idleStreams: 200,
    idleMeasureMs: 30_000,
  },
  smoke: {
    name: 'smoke',
    spawnRounds: 2,
    federatedRounds: 1,
    statusQueries: 5,
    historyTurns: 2,
    overheadTurns: 3,
    queuedMs: 1_000,
    burstAgents: 3,
    verificationSeconds: 0.05,
    poolSize: 2,
    idleStreams: 3,
    idleMeasureMs: 2_000,
  },
};

export interface Comparison {
  ours: Distribution;
  baseline: Distribution;
}

export interface BenchmarkResults {
  scale: BenchScale;
  machine: { cpus: number; memoryMb: number; sandboxRuntime: string; node: string };
  spawn: Comparison & { profileMedianMs: Record<string, number> };
  /** Spawn → ready with a warm pool (WARM_POOL_SIZE), against the same bare create+start. */
  pooled: Comparison & { poolSize: number; profileMedianMs: Record<string, number> };
  kill: Comparison;
  federated: {
    spawn: Distribution;
    kill: Distribution;
    localSpawnP50: number;
    profileMedianMs: Record<string, number>;
  };
  status: Comparison & { profileMedianMs: Record<string, number> };
  /** A turn (model call + one tool call) through the system, against a bare loop doing the same. */
  turn: Comparison & { profileMedianMs: Record<string, number> };
  verification: VerificationFigures;
  burst: Omit<BurstFigures, 'spawnToRunningMs' | 'answeredMs' | 'profiles'> & {
    spawnToRunning: Distribution;
    answered: Distribution;
    capacity: number;
    profileMedianMs: Record<string, number>;
  };
  /** PostgreSQL's queries per second while idle event streams and live sessions wait, against none. */
  idleStreams: IdleStreamFigures;
  history: { eventsPerTurn: number; eventsPerQueuedMinute: number; queuedForMs: number };
  /** Raw samples, for the chart. */
  samples: Record<string, number[]>;
}

const median = (values: number[]): number => {
  const known = values.filter((value) => Number.isFinite(value));
  return known.length === 0 ? NaN : Math.round(percentile(known, 50) * 10) / 10;
};

/** What a status request does, each timed on its own in the same rounds; the rest is the HTTP request and routing. */
export const STATUS_PHASES = [
  'database reads: the token, then the row (as the API reads them)',
  'the workflow query',
  'the rest: HTTP, authentication and routing, the answer as JSON',
] as const;

/** The median of each phase over the profiles (in the phases' order). */
function mediansOf<Phase extends string>(
  phases: readonly Phase[],
  profiles: Array<Record<Phase, number>>,
): Record<string, number> {
  return Object.fromEntries(phases.map((phase) => [phase, median(profiles.map((profile) => profile[phase]))]));
}
const profileMedians = (profiles: SpawnProfile[]): Record<string, number> => mediansOf(SPAWN_PHASES, profiles);

/** Every figure of issue 12, each with its baseline measured in this run. Progress lines go to `say`. */
export async function runBenchmark(
  scale: BenchScale,
  say: (line: string) => void = () => undefined,
): Promise<BenchmarkResults> {
  const model = benchModel();
  await model.start();
  const repository = await createRepository();
  const docker = createDockerClient(testConfig().DOCKER_HOST);
  const events = await watchContainerEvents(docker);
  try {
    // First, while nothing else runs: it measures CPU alone.
    say('signed-command verification');
    const verification = measureVerification(scale.verificationSeconds);
    say('local agents: spawn → ready and kill → gone against bare create+start and remove');
    const local = await startBenchInstance(model, { MAX_CONCURRENT_AGENTS: '2' });
    let localResults;
    try {
      await spawnKillRounds(local, events, repository, 1, 'warm-up');
      const rounds = await spawnKillRounds(local, events, repository, scale.spawnRounds, 'spawn');
      say('status query latency');
      const status = await statusQueryLatency(local, repository, scale.statusQueries);
      say('workflow history growth per turn and per queued minute');
      const history = await historyGrowth(local, repository, scale.historyTurns, scale.queuedMs);
      say('turn overhead: a model call and a tool call through the system, against a bare loop');
      const turns = await turnOverhead(local, repository, model, scale.overheadTurns);
      localResults = { rounds, status, history, turns, runtime: local.instance.config.SANDBOX_RUNTIME };
    } finally {
      await local.stop();
    }

    say(`warm pool: spawn → ready with ${scale.poolSize} sandboxes started ahead`);
    const pooledInstance = await startBenchInstance(model, {
      MAX_CONCURRENT_AGENTS: String(scale.poolSize + 1),
      WARM_POOL_SIZE: String(scale.poolSize),
    });
    let pooledRounds;
    try {
      const warmReady = (): Promise<void> => waitForWarmPool(pooledInstance, scale.poolSize);
      await spawnKillRounds(pooledInstance, events, repository, 1, 'pooled-warm-up', warmReady);
      pooledRounds = await spawnKillRounds(pooledInstance, events, repository, scale.spawnRounds, 'pooled', warmReady);
    } finally {
      await pooledInstance.stop();
    }

    say('federated agents: spawn and kill through a hub on loopback');
    const hub = await startBenchInstance(model);
    const spoke = await startBenchInstance(model, { MAX_CONCURRENT_AGENTS: '2' });
    let federated;
    try {
      const link = await linkInstances(hub.instance, spoke.instance);
      await federatedSpawnKillRounds(hub, spoke, link, events, repository, 1, 'federated-warm-up');
      federated = await federatedSpawnKillRounds(
        hub,
        spoke,
        link,
        events,
        repository,
        scale.federatedRounds,
        'federated',
      );
    } finally {
      await Promise.all([hub.stop(), spoke.stop()]);
    }

    say(
      `idle event streams and live sessions: PostgreSQL queries per second ` +
        `with ${scale.idleStreams} of each, against none`,
    );
    const idle = await startBenchInstance(model, { MAX_CONCURRENT_AGENTS: '1' });
    let idleStreams: IdleStreamFigures;
    try {
      idleStreams = await idleStreamLoad(idle, repository, scale.idleStreams, scale.idleMeasureMs);
    } finally {
      await idle.stop();
    }

    say(`burst: ${scale.burstAgents} spawns at once, capacity ${scale.burstAgents}`);
    const large = await startBenchInstance(model, { MAX_CONCURRENT_AGENTS: String(scale.burstAgents) });
    let burstFigures: BurstFigures;
    try {
      burstFigures = await burst(large, events, repository, scale.burstAgents);
    } finally {
      await large.stop();
    }

    const { rounds, status, history, turns } = localResults;
    const { spawnToRunningMs, answeredMs, profiles: burstProfiles, ...burstRest } = burstFigures;
    return {
      scale,
      machine: {
        cpus: os.cpus().length,
        memoryMb: Math.round(os.totalmem() / 1024 / 1024),
        sandboxRuntime: localResults.runtime,
        node: process.version,
      },
      spawn: {
        ours: distribution(rounds.ours.spawnToReadyMs),
        baseline: distribution(rounds.baseline.createStartMs),
        profileMedianMs: profileMedians(rounds.ours.profiles),
      },
      pooled: {
        ours: distribution(pooledRounds.ours.spawnToReadyMs),
        baseline: distribution(pooledRounds.baseline.createStartMs),
        poolSize: scale.poolSize,
        profileMedianMs: profileMedians(pooledRounds.ours.profiles),
      },
      kill: { ours: distribution(rounds.ours.killToGoneMs), baseline: distribution(rounds.baseline.removeMs) },
      federated: {
        spawn: distribution(federated.spawnToReadyMs),
        kill: distribution(federated.killToGoneMs),
        localSpawnP50: percentile(rounds.ours.spawnToReadyMs, 50),
        profileMedianMs: mediansOf([...FEDERATED_PHASES, ...SPAWN_PHASES], federated.profiles),
      },
      status: {
        ours: distribution(status.apiMs),
        baseline: distribution(status.bareQueryMs),
        profileMedianMs: {
          [STATUS_PHASES[0]]: median(status.readsMs),
          [STATUS_PHASES[1]]: median(status.bareQueryMs),
          [STATUS_PHASES[2]]: median(
            status.apiMs.map((api, round) => api - (status.readsMs[round] ?? NaN) - (status.bareQueryMs[round] ?? NaN)),
          ),
        },
      },
      turn: {
        ours: distribution(turns.oursMs),
        baseline: distribution(turns.bareMs),
        profileMedianMs: {
          ...mediansOf(TURN_PHASES, turns.profiles),
          ...mediansOf(BARE_TURN_PHASES, turns.bareProfiles),
        },
      },
      verification,
      burst: {
        ...burstRest,
        spawnToRunning: distribution(spawnToRunningMs),
        answered: distribution(answeredMs),
        capacity: scale.burstAgents,
        profileMedianMs: profileMedians(burstProfiles),
      },
      idleStreams,
      history,
      samples: {
        'spawn → ready': rounds.ours.spawnToReadyMs,
        'bare create+start': rounds.baseline.createStartMs,
        'spawn → ready, warm pool': pooledRounds.ours.spawnToReadyMs,
        'kill → gone': rounds.ours.killToGoneMs,
        'bare forced remove': rounds.baseline.removeMs,
        'federated spawn → ready': federated.spawnToReadyMs,
        'federated kill → gone': federated.killToGoneMs,
        'status through the API': status.apiMs,
        'bare workflow query': status.bareQueryMs,
        'turn through the system': turns.oursMs,
        'bare turn': turns.bareMs,
        'burst spawn → running': spawnToRunningMs,
      },
    };
  } finally {
    events.stop();
    await model.stop();
  }
}
