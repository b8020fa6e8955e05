/**
 * The model calls in flight in this worker process, by agent. A kill's first step (removing the
 * sandbox, on the same host's queue as the model call) aborts its agent's call here at once: waiting
 * for the call's next heartbeat to carry the cancellation could let it stream, and bill, for seconds.
 */
export class InFlightModelCalls {
  private readonly calls = new Map<string, AbortController>();

  /** Registers the agent's call; its signal aborts when `abort(agentId)` is called. */
  begin(agentId: string): AbortController {
    const controller = new AbortController();
    this.calls.set(agentId, controller);
    return controller;
  }

  end(agentId: string, controller: AbortController): void {
    if (this.calls.get(agentId) === controller) this.calls.delete(agentId);
  }

  /** Whether a call of the agent was in flight here (it is aborted now). */
  abort(agentId: string): boolean {
    const controller = this.calls.get(agentId);
    controller?.abort(new Error('the agent was killed'));
    return controller !== undefined;
  }
}
