import type { FederatedAgentStatus } from './contract';

/** The current details of a hub's federatedSpawn: the mirrored state, the remote progress, the link. */
export function followingDetails(status: FederatedAgentStatus): string {
  const progress = status.progress;
  const tokens = progress ? progress.usage.inputTokens + progress.usage.outputTokens : 0;
  const lines = [
    `**${status.state}** on peer ${status.remote.name} · ${status.following}` +
      (progress ? ` · turn ${progress.turn} · ${tokens} tokens` : ''),
    `**Remote agent** ${status.remoteAgentId ?? 'not yet named'} · last contact ${status.lastContactAt ?? 'never'}`,
  ];
  if (progress?.lastTool) lines.push(`**Last tool** ${progress.lastTool}`);
  if (status.kill)
    lines.push(
      `**Kill** requested ${status.kill.requestedAt}, ` +
        (status.kill.deliveredAt ? `delivered ${status.kill.deliveredAt}` : 'not delivered yet'),
    );
  if (status.note) lines.push(`**Now** ${status.note}`);
  if (status.error) lines.push(`**Error** ${status.error}`);
  return lines.join('\n\n');
}
