import { Context } from '@temporalio/activity';
import { appendEventStatements } from '../domain/agents/agent-events';
import type { Prisma } from '../prisma/client';
import { resultBranchFor } from '../sandbox-runtime/agent-containers';
import { pushResult } from '../sandbox-runtime/result-delivery';
import type { AgentContext, AgentOptions } from '../shared/agent-schemas';
import type { DeliveryOutcome } from '../shared/vocabulary';
import { whileHeartbeating } from './heartbeat';
import type { ActivityDeps } from './index';

type DeliveryDeps = Pick<ActivityDeps, 'prisma' | 'repositories' | 'repositoryCache' | 'deliveryCredentials'>;

/** A finished run's result delivered where its task asked (options.delivery), with the operator's credentials. */
export function createDeliveryActivities(deps: DeliveryDeps) {
  const { prisma } = deps;
  return {
    /**
     * Pushes the stored result bundle's branch (on the host whose repository cache holds the base), stores the outcome
     * with the result and tells the event stream. Answers null when there is nothing to deliver (no push asked, or no
     * commit). Once stored, an outcome is answered again, not pushed again.
     */
    async deliverResult(input: { agentId: string }): Promise<DeliveryOutcome | null> {
      const { agentId } = input;
      const [agent, result, bundle] = await Promise.all([
        prisma.agent.findUniqueOrThrow({
          where: { id: agentId },
          select: { context: true, options: true, originConnectionId: true },
        }),
        prisma.agentResult.findUnique({ where: { agentId }, select: { commitSha: true, delivery: true } }),
        prisma.agentResultBundle.findUnique({ where: { agentId }, select: { data: true, commitSha: true } }),
      ]);
      const options = agent.options as AgentOptions;
      const context = agent.context as unknown as AgentContext;
      if (!options.delivery?.push || !result?.commitSha) return null;
      if (result.delivery) return result.delivery as unknown as DeliveryOutcome;
      const branch = options.delivery.branch ?? resultBranchFor(agentId);
      const remote = options.delivery.remote ?? context.repository;
      const outcome: DeliveryOutcome = bundle
        ? await whileHeartbeating(() =>
            pushResult({
              policy: deps.repositories,
              cache: deps.repositoryCache,
              origin: { repository: context.repository, branch: context.branch, allowLocal: !agent.originConnectionId },
              target: { remote, branch },
              bundle: { data: bundle.data, ref: `refs/heads/${resultBranchFor(agentId)}`, commitSha: bundle.commitSha },
              credentials: deps.deliveryCredentials,
              signal: Context.current().cancellationSignal,
            }),
          )
        : {
            pushed: false,
            remote,
            branch,
            commit: result.commitSha,
            failure: 'no_bundle',
            reason: 'the result has no stored bundle to push (it was too large, or could not be made)',
          };
      if (!outcome.pushed)
        Context.current().log.warn('the result was not delivered', { agentId, failure: outcome.failure });
      const stored = outcome as unknown as Prisma.InputJsonObject;
      await prisma.$transaction([
        prisma.agentResult.update({ where: { agentId }, data: { delivery: stored } }),
        ...appendEventStatements(prisma, agentId, { type: 'delivery', ...outcome }),
      ]);
      return outcome;
    },
  };
}
