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
