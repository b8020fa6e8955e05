-- Push, not poll: every appended agent event wakes its readers through LISTEN/NOTIFY. A notification
-- is sent when the transaction that appended the event commits, so a woken reader always finds it.
-- Channel agent_events: "<agentId>:<seq>" for every event (the API's event streams listen).
-- Channel session_events: the same, only for agents whose session has a callback (the workers listen
-- and wake the session's callback delivery).
-- (Prisma splits a migration at every semicolon, even inside a function body: the body is an escape
-- string whose statement ends are written \x3b.)
CREATE FUNCTION notify_agent_event() RETURNS trigger LANGUAGE plpgsql AS E'
BEGIN
  PERFORM pg_notify(''agent_events'', NEW.agent_id || '':'' || NEW.seq)\x3b
  IF EXISTS (SELECT 1 FROM sessions WHERE agent_id = NEW.agent_id AND callback_url IS NOT NULL) THEN
    PERFORM pg_notify(''session_events'', NEW.agent_id || '':'' || NEW.seq)\x3b
  END IF\x3b
  RETURN NULL\x3b
END
';

CREATE TRIGGER agent_events_notify AFTER INSERT ON agent_events FOR EACH ROW EXECUTE FUNCTION notify_agent_event();
