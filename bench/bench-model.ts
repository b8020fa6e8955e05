import { byTurn, byWorkItem, FakeAnthropic, reply, type Script } from '../scripts/scripted-model-server';

/** Work items the benchmark's agents get; the scripted model answers each kind its own way. */
export const WORK = {
  /** One long tool call: the agent stays live until it is killed. */
  hold: 'hold the sandbox',
  /** `take turns: N`: N turns with a quick tool call each, then done. */
  turns: (count: number): string => `take turns: ${count}`,
  /** Like a person at work: the model thinks 0.5–2.5 s per turn, then a tool runs for a few seconds, until killed. */
  realistic: 'work at a realistic pace',
} as const;

const takeTurns: Script = (recorded) => {
  const count = Number(/take turns: (\d+)/.exec(JSON.stringify(recorded.body.messages[0]))?.[1] ?? 0);
  return recorded.turn < count ? reply.toolUse({ name: 'bash', input: { command: 'true' } }) : reply.text('Done.');
};

const realistic: Script = () => ({
  ...reply.toolUse({ name: 'bash', input: { command: `sleep ${2 + Math.floor(Math.random() * 4)}` } }),
  delayMs: 500 + Math.floor(Math.random() * 2000),
});

export function benchModel(): FakeAnthropic {
  return new FakeAnthropic(
    byWorkItem({
      [WORK.hold]: byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 600' } })]),
      'take turns:': takeTurns,
      [WORK.realistic]: realistic,
    }),
  );
}
