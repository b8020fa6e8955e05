import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

/**
 * The project's custom search attributes, set when an agent's workflow starts (AgentState also on
 * every state change), so the Web UI's list answers "all running tester agents on spoke X" with
 * `AgentType = "tester" AND AgentState = "running" AND RemoteInstance = "spoke-x"`.
 * The start script, docker-compose and the tests register every key in ALL_SEARCH_ATTRIBUTES.
 *
 * The dev server's SQLite visibility store has 10 Keyword slots and 3 Int slots: seven Keyword
 * attributes and one Int leave room for three more Keywords.
 */
export const AGENT_ID = defineSearchAttributeKey('AgentId', SearchAttributeType.KEYWORD);
export const AGENT_STATE = defineSearchAttributeKey('AgentState', SearchAttributeType.KEYWORD);
export const AGENT_TYPE = defineSearchAttributeKey('AgentType', SearchAttributeType.KEYWORD);
export const TASK_ID = defineSearchAttributeKey('TaskId', SearchAttributeType.KEYWORD);
/** The workspace's name (what a token names), not its id. */
export const WORKSPACE = defineSearchAttributeKey('Workspace', SearchAttributeType.KEYWORD);
/** Admission priority, 1 (lowest) to 10: an Int so `Priority >= 8` works. */
export const PRIORITY = defineSearchAttributeKey('Priority', SearchAttributeType.INT);
/** Where the agent runs: the peer's name for a federated agent, `local` otherwise. */
export const REMOTE_INSTANCE = defineSearchAttributeKey('RemoteInstance', SearchAttributeType.KEYWORD);
/** The repository as the task named it (never with credentials: see agentSearchAttributes). */
export const REPOSITORY = defineSearchAttributeKey('Repository', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [
  AGENT_ID,
  AGENT_STATE,
  AGENT_TYPE,
  TASK_ID,
  WORKSPACE,
  PRIORITY,
  REMOTE_INSTANCE,
  REPOSITORY,
];

/** The value RemoteInstance holds for an agent that runs on this instance. */
export const LOCAL_INSTANCE = 'local';

export interface AgentSearchFields {
  agentId: string;
  state: string;
  agentType: string;
  taskId: string;
  workspace: string;
  priority: number;
  remoteInstance: string;
  repository: string;
}

/** Userinfo in a repository URL could be a credential: the Web UI and the visibility store never see it. */
export function repositoryForDisplay(repository: string): string {
  return repository.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

/** The search attributes an agent's workflow starts with. */
export function agentSearchAttributes(fields: AgentSearchFields): SearchAttributePair[] {
  return [
    { key: AGENT_ID, value: fields.agentId },
    { key: AGENT_STATE, value: fields.state },
    { key: AGENT_TYPE, value: fields.agentType },
    { key: TASK_ID, value: fields.taskId },
    { key: WORKSPACE, value: fields.workspace },
    { key: PRIORITY, value: fields.priority },
    { key: REMOTE_INSTANCE, value: fields.remoteInstance },
    { key: REPOSITORY, value: repositoryForDisplay(fields.repository) },
  ];
}
