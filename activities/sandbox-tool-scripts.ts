/**
 * The programs the agent's tools run inside the sandbox. Inputs reach them through argv and stdin,
 * never through string interpolation into a shell command.
 */

/** Where the bash tool keeps its session between calls: the sandbox's private /tmp (tmpfs), never the workspace. */
export const BASH_SESSION_FILE = '/tmp/.agent-bash-session';

/**
 * The bash tool's session. Each call is its own process (so a worker that dies loses nothing): the
 * call restores the working directory, variables, functions and aliases the previous call left,
 * runs the command in the same shell (`eval`, so `cd` and assignments stick) and saves them again
 * on exit, whatever the exit code. `$1` is the command.
 */
export const BASH_SESSION = `__agent_session=${BASH_SESSION_FILE}
shopt -s expand_aliases
cd /workspace
if [ -f "$__agent_session" ]; then . "$__agent_session" 2>/dev/null; fi
__agent_save_session() {
  __agent_status=$?
  {
    printf 'cd %q 2>/dev/null\\n' "$PWD"
    for __agent_name in $(compgen -v); do
      case "$__agent_name" in
        BASH*|COMP*|DIRSTACK|EUID|FUNCNAME|GROUPS|HISTCMD|HOSTNAME|HOSTTYPE|IFS|LINENO|MACHTYPE|OLDPWD|OPTERR|OPTIND|OSTYPE|PIPESTATUS|PPID|PS4|PWD|RANDOM|SECONDS|SHELLOPTS|SHLVL|SRANDOM|UID|EPOCH*|_|__agent_*) continue ;;
      esac
      declare -p "$__agent_name" 2>/dev/null
    done
    declare -f
    alias -p
  } > "$__agent_session.new" 2>/dev/null && mv -f "$__agent_session.new" "$__agent_session"
  exit "$__agent_status"
}
trap __agent_save_session EXIT
eval "$1"`;

/**
 * The text editor tool (text_editor_20250728): view, create, str_replace and insert. The request
 * comes as JSON on stdin; the answer is what the model reads, an error goes to stderr with exit 1.
 * Relative paths are relative to /workspace.
 */
export const TEXT_EDITOR = `import json, os, sys
req = json.load(sys.stdin)
command, path, limit = req['command'], req['path'], req['max_characters']
path = os.path.normpath(os.path.join('/workspace', path))
def fail(message):
    sys.stderr.write(message)
    sys.exit(1)
def clipped(text):
    if len(text) <= limit:
        return text
    return text[:limit] + '\\n<response clipped: the output is longer than %d characters; view a smaller range>' % limit
def read(path):
    if not os.path.exists(path):
        fail('The path %s does not exist.' % path)
    if os.path.isdir(path):
        fail('The path %s is a directory.' % path)
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except UnicodeDecodeError:
        fail('The file %s is not UTF-8 text.' % path)
def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
if command == 'view':
    if os.path.isdir(path):
        entries = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
            depth = os.path.relpath(root, path).count(os.sep) + (0 if root == path else 1)
            if depth >= 2:
                dirs[:] = []
            entries += [os.path.join(root, name) + '/' for name in dirs]
            entries += [os.path.join(root, name) for name in sorted(files) if not name.startswith('.')]
        print(clipped('Files and directories up to 2 levels deep in %s, hidden items excluded:\\n%s' % (path, '\\n'.join(sorted(entries)))))
    else:
        lines = read(path).split('\\n')
        start, end = 1, len(lines)
        if req.get('view_range'):
            start, end = req['view_range']
            if end == -1:
                end = len(lines)
            if start < 1 or start > len(lines) or end < start or end > len(lines):
                fail('Invalid view_range %s: the file has %d lines.' % (req['view_range'], len(lines)))
        print(clipped('\\n'.join('%6d\\t%s' % (number, lines[number - 1]) for number in range(start, end + 1))))
elif command == 'create':
    if os.path.isdir(path):
        fail('The path %s is a directory.' % path)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    write(path, req['file_text'])
    print('File created successfully at: %s' % path)
elif command == 'str_replace':
    text = read(path)
    old, new = req['old_str'], req.get('new_str') or ''
    count = text.count(old)
    if count == 0:
        fail('No replacement was performed: old_str does not appear verbatim in %s.' % path)
    if count > 1:
        fail('No replacement was performed: old_str appears %d times in %s. Include more context to make it unique.' % (count, path))
    write(path, text.replace(old, new, 1))
    print('The file %s has been edited.' % path)
elif command == 'insert':
    lines = read(path).split('\\n')
    line = req['insert_line']
    if line < 0 or line > len(lines):
        fail('Invalid insert_line %d: it must be between 0 and %d.' % (line, len(lines)))
    lines[line:line] = req['text'].split('\\n')
    write(path, '\\n'.join(lines))
    print('The text was inserted after line %d of %s.' % (line, path))`;

/** Where detached tool calls keep their state inside the sandbox's private /tmp (one folder per call). */
export const TOOL_CALLS_DIR = '/tmp/.agent-calls';

/**
 * Runs a tool call detached from the exec that asked for it, so a worker that stops (a deploy) or dies
 * leaves the call running, and another worker re-attaches to it instead of reporting it unknown.
 * argv: the call's folder, the output cap in bytes, the timeout in seconds, then the command.
 *
 * - Creating the call's folder is the claim: it happens once per call, so the command starts at most
 *   once however often the activity is retried. The first caller forks a keeper into its own session:
 *   it holds an exclusive lock on the folder's `lock` for as long as the command runs, keeps the first
 *   N bytes of stdout and stderr (the rest is read and dropped), enforces the timeout through coreutils
 *   `timeout` (exit 124, its own process group, recorded in `pgid` so a kill can end the group), and
 *   writes `result.json` (exit code, whether output was dropped, when it ended) before letting go of
 *   the lock. The command's stdin is a file in the folder, removed once the command holds it.
 * - Every caller (the first, or one re-attaching) then waits on a shared lock, which the kernel grants
 *   when the keeper has ended (however it ended), and prints the outcome as one JSON line with both
 *   streams in base64; `{"lost": ...}` when the keeper ended without a result.
 * - Folders of earlier calls that have a result are removed when a new call starts: the worker records
 *   a call's outcome before it asks for the next one.
 */
export const TOOL_RUNNER = `import base64, fcntl, json, os, shutil, subprocess, sys, threading, time
call_dir, limit, seconds, command = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
calls = os.path.dirname(call_dir)
lock_path, result_path, pgid_path = [os.path.join(call_dir, name) for name in ('lock', 'result.json', 'pgid')]
def emit(value):
    sys.stdout.write(json.dumps(value))
    sys.stdout.flush()
    sys.exit(0)
os.makedirs(calls, mode=0o700, exist_ok=True)
try:
    os.mkdir(call_dir, 0o700)
    fresh = True
except FileExistsError:
    fresh = False
if fresh:
    for name in os.listdir(calls):
        other = os.path.join(calls, name)
        if other != call_dir and os.path.exists(os.path.join(other, 'result.json')):
            shutil.rmtree(other, ignore_errors=True)
    stdin_path = os.path.join(call_dir, 'stdin')
    with open(stdin_path, 'wb') as f:
        f.write(sys.stdin.buffer.read())
    ready_r, ready_w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        os.close(ready_r)
        lock = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        dropped = [False]
        def keep(stream, name):
            kept = 0
            with open(os.path.join(call_dir, name), 'wb') as out:
                while True:
                    chunk = stream.read(65536)
                    if not chunk:
                        return
                    room = limit - kept
                    if len(chunk) > room:
                        dropped[0] = True
                    if room > 0:
                        out.write(chunk[:room])
                        kept += min(room, len(chunk))
        with open(stdin_path, 'rb') as stdin:
            child = subprocess.Popen(['timeout', '--kill-after=5', seconds] + command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/workspace')
        os.unlink(stdin_path)
        with open(pgid_path + '.new', 'w') as f:
            f.write(str(child.pid))
        os.rename(pgid_path + '.new', pgid_path)
        os.write(ready_w, b'1')
        os.close(ready_w)
        copiers = [threading.Thread(target=keep, args=(child.stdout, 'stdout'), daemon=True), threading.Thread(target=keep, args=(child.stderr, 'stderr'), daemon=True)]
        for copier in copiers:
            copier.start()
        code = child.wait()
        # A background process the command left may hold the pipes open: its output is not waited for.
        for copier in copiers:
            copier.join(2)
        with open(result_path + '.new', 'w') as f:
            json.dump({'exitCode': code if code >= 0 else 128 - code, 'truncated': dropped[0], 'endedAt': time.time()}, f)
        os.rename(result_path + '.new', result_path)
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
else:
    # Re-attaching: the first caller may still be starting the keeper.
    deadline = time.time() + 10
    while not os.path.exists(pgid_path) and not os.path.exists(result_path) and time.time() < deadline:
        time.sleep(0.05)
    if not os.path.exists(pgid_path):
        emit({'lost': 'the call was claimed but its command never started'})
lock = os.open(lock_path, os.O_RDONLY)
fcntl.flock(lock, fcntl.LOCK_SH)
if not os.path.exists(result_path):
    emit({'lost': 'the command ended without a result (its keeper was killed)'})
with open(result_path) as f:
    result = json.load(f)
def output(name):
    try:
        with open(os.path.join(call_dir, name), 'rb') as f:
            return base64.b64encode(f.read(limit)).decode()
    except FileNotFoundError:
        return ''
result['stdout'], result['stderr'], result['reattached'] = output('stdout'), output('stderr'), not fresh
emit(result)`;
