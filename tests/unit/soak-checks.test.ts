import { judgeCallbacks } from '../../soak/checks';
import type { SessionCallbackBody } from '../../workflows/session-callbacks/contract';

const event = (sequence: number, data: Record<string, unknown> = { type: 'turn' }): SessionCallbackBody =>
  ({
    eventId: `s:${sequence}`,
    sessionId: 's',
    sequence,
    type: String(data.type),
    occurredAt: '2026-12-04T00:00:00.000Z',
    data,
  }) as SessionCallbackBody;
const final = (sequence: number): SessionCallbackBody => event(sequence, { type: 'state', state: 'completed' });

describe('the soak judges a session callbacks as a receiver relies on them', () => {
  it('accepts every sequence once, in order, ending with the final state', () => {
    expect(judgeCallbacks([event(1), event(2), final(3)])).toEqual({ inOrder: true, gapless: true, finished: true });
  });

  it('accepts a redelivery (an acknowledgement that was lost): receivers deduplicate by eventId', () => {
    expect(judgeCallbacks([event(1), event(2), event(1), event(2), final(3)])).toEqual({
      inOrder: true,
      gapless: true,
      finished: true,
    });
  });

  it('finds an event delivered before an earlier one, a gap, and a session whose final state never came', () => {
    expect(judgeCallbacks([event(2), event(1), final(3)]).inOrder).toBe(false);
    expect(judgeCallbacks([event(1), final(3)]).gapless).toBe(false);
    expect(judgeCallbacks([event(1), event(2)]).finished).toBe(false);
    expect(judgeCallbacks([])).toEqual({ inOrder: true, gapless: true, finished: false });
  });
});
