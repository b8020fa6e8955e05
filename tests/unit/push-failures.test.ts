import { pushFailureOf } from '../../sandbox-runtime/result-delivery';

/** What git's words mean for a push that failed (the messages git 2.39 and common forges print). */
describe('push failures', () => {
  it.each([
    ["fatal: Authentication failed for 'https://example.com/r.git/'", 'authentication_failed', false],
    [
      "fatal: could not read Username for 'http://127.0.0.1:8080': terminal prompts disabled",
      'authentication_failed',
      false,
    ],
    [
      "fatal: unable to access 'https://example.com/r.git/': The requested URL returned error: 403",
      'authentication_failed',
      false,
    ],
    [
      'git@example.com: Permission denied (publickey).\nfatal: Could not read from remote repository.',
      'authentication_failed',
      false,
    ],
    [' ! [rejected]        agent/x -> main (fetch first)\nerror: failed to push some refs', 'non_fast_forward', false],
    [' ! [rejected]        agent/x -> main (non-fast-forward)', 'non_fast_forward', false],
    [
      "fatal: unable to access 'http://127.0.0.1:9/r.git/': Failed to connect to 127.0.0.1 port 9: " +
        "Couldn't connect to server",
      'unreachable',
      true,
    ],
    [
      "fatal: unable to access 'https://nowhere.invalid/r.git/': Could not resolve host: nowhere.invalid",
      'unreachable',
      true,
    ],
    [' ! [remote rejected] agent/x -> main (pre-receive hook declined)', 'push_failed', false],
  ])('%s', (stderr, failure, retry) => {
    expect(pushFailureOf(stderr)).toEqual({ failure, retry });
  });
});
