import { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { PrismaClient } from '../prisma/client';
import { WORKER_REPORT_MAX_AGE_MS } from '../platform/worker-hosts';
import type { PrunedRecords, RetentionSettings } from '../workflows/retention/contract';
import { sandboxHostQueue } from '../shared/task-queues';
import { pruneWorkspaces } from '../sandbox-runtime/workspace-retention';
import type { RepositoryCache } from '../sandbox-runtime/repository-cache';

/** An outbound command still sending after this long has no attempt left (a spawn's retries last minutes). */
const ABANDONED_SEND_MS = 3600 * 1000;
/** Rows deleted per statement: short transactions, heartbeats in between. */
const BATCH = 5_000;

export interface RetentionDeps {
  prisma: PrismaClient;
  docker: Docker;
  workspacesDir: string;
  repositoryCache: RepositoryCache | null;
}

const cutoff = (hours: number, now: number): Date => new Date(now - hours * 3600 * 1000);

/** Runs `batch` until it deletes fewer than BATCH rows; heartbeats with the running total. */
async function inBatches(batch: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await batch();
    total += deleted;
    Context.current().heartbeat(total);
    if (deleted < BATCH) return total;
  }
}

export function createRetentionActivities(deps: RetentionDeps) {
  const { prisma } = deps;
  return {
    /**
     * Deletes what the settings no longer keep: the event logs and transitions, transcripts and tool
     * calls of agents that finished long enough ago (never while a session's callbacks still owe its
     * receiver an event), federation commands and events by age, and nonces whose signatures expired.
     */
    async pruneRecords(settings: RetentionSettings): Promise<PrunedRecords> {
      const now = Date.now();
      const pruned: PrunedRecords = {
        events: 0,
        transitions: 0,
        messages: 0,
        toolCalls: 0,
        federationCommands: 0,
        federationEvents: 0,
        nonces: 0,
        resultBundles: 0,
      };
      if (settings.eventHours > 0) {
        const before = cutoff(settings.eventHours, now);
        pruned.events = await inBatches(
          () => prisma.$executeRaw`DELETE FROM agent_events WHERE id IN (
            SELECT e.id FROM agents a JOIN agent_events e ON e.agent_id = a.id
            WHERE a.finished_at < ${before}
              AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.agent_id = a.id AND s.callback_url IS NOT NULL
                AND s.delivered_seq < (SELECT max(seq) FROM agent_events m WHERE m.agent_id = a.id))
            LIMIT ${BATCH})`,
        );
        pruned.transitions = await inBatches(
          () => prisma.$executeRaw`DELETE FROM agent_transitions WHERE id IN (
            SELECT t.id FROM agents a JOIN agent_transitions t ON t.agent_id = a.id
              WHERE a.finished_at < ${before} LIMIT ${BATCH})`,
        );
      }
      if (settings.transcriptHours > 0) {
        const before = cutoff(settings.transcriptHours, now);
        pruned.messages = await inBatches(
          () => prisma.$executeRaw`DELETE FROM agent_messages WHERE id IN (
            SELECT m.id FROM agents a JOIN agent_messages m ON m.agent_id = a.id
              WHERE a.finished_at < ${before} LIMIT ${BATCH})`,
        );
        pruned.toolCalls = await inBatches(
          () => prisma.$executeRaw`DELETE FROM tool_calls t USING (
            SELECT c.agent_id, c.id FROM agents a JOIN tool_calls c ON c.agent_id = a.id
              WHERE a.finished_at < ${before} LIMIT ${BATCH}) old
            WHERE t.agent_id = old.agent_id AND t.id = old.id`,
        );
      }
      if (settings.workspaceHours > 0) {
        // A result bundle is kept as long as the workspace it came from; its result then says it was pruned.
        const before = cutoff(settings.workspaceHours, now);
        pruned.resultBundles = await inBatches(
          () => prisma.$executeRaw`WITH gone AS (
              DELETE FROM agent_result_bundles WHERE agent_id IN (
                SELECT b.agent_id FROM agents a JOIN agent_result_bundles b ON b.agent_id = a.id
                  WHERE a.finished_at < ${before} LIMIT ${BATCH})
              RETURNING agent_id)
            UPDATE agent_results r SET bundle_status = 'pruned' FROM gone WHERE r.agent_id = gone.agent_id`,
        );
      }
      if (settings.federationHours > 0) {
        const before = cutoff(settings.federationHours, now);
        pruned.federationCommands = await inBatches(
          () =>
            prisma.$executeRaw`DELETE FROM federation_commands WHERE id IN (SELECT id FROM federation_commands
              WHERE created_at < ${before} LIMIT ${BATCH})`,
        );
        pruned.federationEvents = await inBatches(
          () =>
            prisma.$executeRaw`DELETE FROM federation_events WHERE id IN (SELECT id FROM federation_events
              WHERE created_at < ${before} LIMIT ${BATCH})`,
        );
      }
      // A send that no attempt will follow any more (its worker died mid-send) ends failed, never stays sending.
      await prisma.$executeRaw`UPDATE federation_commands
        SET status = 'failed', error_code = COALESCE(error_code, 'abandoned'),
        error = 'no answer was recorded and no attempt followed', completed_at = ${new Date(now)}
        WHERE direction = 'outbound' AND status = 'sending' AND created_at < ${new Date(now - ABANDONED_SEND_MS)}`;
      // A nonce is kept only while its signature could pass the time window: a replay after that is refused as expired
      // anyway.
      pruned.nonces = await inBatches(
        () => prisma.$executeRaw`DELETE FROM federation_nonces WHERE (key_id, nonce) IN (
          SELECT key_id, nonce FROM federation_nonces WHERE expires_at < ${new Date(now)} LIMIT ${BATCH})`,
      );
      return pruned;
    },

    /** The sandbox queues of this instance's hosts that reported lately (their workers take the workspace pruning). */
    async liveHostQueues(): Promise<string[]> {
      const { taskQueue } = Context.current().info;
      const hosts = await prisma.workerHost.findMany({
        where: { taskQueue, reportedAt: { gt: new Date(Date.now() - WORKER_REPORT_MAX_AGE_MS) } },
        select: { hostId: true },
      });
      return hosts.map((host) => sandboxHostQueue(host.hostId));
    },

    /**
     * Runs on a host's own queue: removes that host's workspaces kept past the retention, and the mirrors of its
     * repository cache that no spawn used for as long. Returns the number of workspaces removed.
     */
    async pruneHostWorkspaces(input: { retentionHours: number }): Promise<number> {
      const removed = await pruneWorkspaces({
        docker: deps.docker,
        prisma,
        workspacesDir: deps.workspacesDir,
        retentionHours: input.retentionHours,
      });
      const mirrors = (await deps.repositoryCache?.prune(input.retentionHours)) ?? 0;
      if (mirrors > 0) Context.current().log.info('repository cache pruned', { mirrors });
      return removed.length;
    },
  };
}
