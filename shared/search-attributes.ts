import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * The project's custom search attributes. The dev server is started with every key listed in
 * ALL_SEARCH_ATTRIBUTES registered, so a workflow can upsert them and the Web UI can filter on them.
 */
export const AGENT_STATE = defineSearchAttributeKey('AgentState', SearchAttributeType.KEYWORD);
export const AGENT_TYPE = defineSearchAttributeKey('AgentType', SearchAttributeType.KEYWORD);
export const TASK_ID = defineSearchAttributeKey('TaskId', SearchAttributeType.KEYWORD);
export const WORKSPACE_ID = defineSearchAttributeKey('WorkspaceId', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [AGENT_STATE, AGENT_TYPE, TASK_ID, WORKSPACE_ID];
