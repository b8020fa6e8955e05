import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { AgentService } from '../api/agent-service';
import { ApiError } from '../api/errors';
import { toView } from '../api/routes/agents';
import { SpawnAgentRequestSchema } from '../shared/agent-schemas';
import type { ConnectionWithKeys } from './incoming';
import type { CommandEnvelope } from './messages';

export type CommandOutcome = { status: 'ok'; result: unknown } | { status: 'error'; error: { code: string; message: string } };

const AgentRef = z.strictObject({ agentId: z.string().regex(/^agent-[0-9a-f-]{36}$/) });

/** agent ids for federated spawns derive from the connection and messageId: a replayed spawn is a no-op. */
export function federatedAgentId(connectionId: string, messageId: string): string {
  const hex = createHash('sha256').update(`${connectionId}:${messageId}`).digest('hex');
  return `agent-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Runs an admitted command in the connection's workspace; failures become an error outcome for the signed reply. */
export async function executeCommand(agents: AgentService, connection: ConnectionWithKeys, envelope: CommandEnvelope): Promise<CommandOutcome> {
  const workspaceId = connection.workspaceId;
  if (!workspaceId) return { status: 'error', error: { code: 'no_workspace', message: 'the connection belongs to no workspace' } };
  try {
    switch (envelope.commandType) {
      case 'agent.spawn': {
        const request = SpawnAgentRequestSchema.parse(envelope.payload);
        return { status: 'ok', result: await agents.spawn(workspaceId, request, federatedAgentId(connection.id, envelope.messageId)) };
      }
      case 'agent.status': {
        const { agentId } = AgentRef.parse(envelope.payload);
        const { row, live } = await agents.view(agentId, workspaceId);
        return { status: 'ok', result: toView(row, live) };
      }
      case 'agent.kill': {
        const { agentId } = AgentRef.parse(envelope.payload);
        await agents.kill(agentId, workspaceId, `killed by ${connection.peerName} (${connection.peerInstanceId})`);
        return { status: 'ok', result: { agentId, status: 'killing' } };
      }
      default:
        return { status: 'error', error: { code: 'unknown_command', message: `no handler for ${envelope.commandType}` } };
    }
  } catch (error) {
    if (error instanceof z.ZodError) return { status: 'error', error: { code: 'invalid_payload', message: error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ') } };
    if (error instanceof ApiError) return { status: 'error', error: { code: error.code, message: error.message } };
    throw error;
  }
}
