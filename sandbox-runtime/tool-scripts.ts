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
        BASH*|COMP*|DIRSTACK|EUID|FUNCNAME|GROUPS|HISTCMD|HOSTNAME|HOSTTYPE|IFS|LINENO|MACHTYPE|OLDPWD) continue ;;
        OPTERR|OPTIND|OSTYPE|PIPESTATUS|PPID|PS4|PWD|RANDOM|SECONDS|SHELLOPTS|SHLVL|SRANDOM|UID|EPOCH*) continue ;;
        _|__agent_*) continue ;;
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
        listing = '\\n'.join(sorted(entries))
        print(clipped('Files and directories up to 2 levels deep in %s, hidden items excluded:\\n%s' % (path, listing)))
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
        fail('No replacement was performed: old_str appears %d times in %s. '
             'Include more context to make it unique.' % (count, path))
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
 * Perl (perl-base is part of every Debian system): one short process, where a shell took a dozen and
 * Python's start alone cost 30 ms per call. Without POSIX (loading it took 10 ms of every call): the keeper leaves
 * the exec's process group with the built-in setpgrp (a kill of the exec's group must not reach it; no terminal is
 * attached, so the session does not matter), WNOHANG is Linux's 1, and plain exit is safe because the keeper's and
 * the child's standard streams were reopened before. argv: the call's folder, the output cap in bytes, the
 * timeout in seconds, then the command.
 *
 * - Creating the call's folder is the claim: it happens once per call, so the command starts at most
 *   once however often the activity is retried. The first caller forks a keeper into its own process group:
 *   it holds an exclusive lock on the folder's `lock` while the command runs, keeps the first N bytes
 *   of stdout and stderr (the rest is read and dropped; output a background process still writes after
 *   the command ended is waited for 2 s at most), enforces the timeout through coreutils `timeout`
 *   (exit 124, its own process group, recorded in `pgid` so that a kill can end the group), and writes
 *   `result` (exit code, end time) before it lets go of the lock. The command's stdin is a file in the folder.
 * - Every caller (the first, or one re-attaching) then waits on a shared lock, which the kernel grants
 *   when the keeper has ended (however it ended), and prints the outcome as one JSON line with both
 *   streams in base64; `{"lost": ...}` when the keeper ended without a result.
 * - Folders of earlier calls that have a result are removed when a new call starts: the worker records
 *   a call's outcome before it asks for the next one.
 */
export const TOOL_RUNNER = String.raw`use strict;
use warnings;
use constant WNOHANG => 1;
use Fcntl qw(:flock);
use IO::Select;
use Time::HiRes qw(time);
use MIME::Base64 qw(encode_base64);

my ($dir, $limit, $seconds, @command) = @ARGV;
(my $calls = $dir) =~ s{/[^/]+$}{};
sub emit { print $_[0]; exit 0 }
sub lost { emit(qq({"lost":"$_[0]"})) }
sub slurp {
  my ($file, $max) = @_;
  open(my $fh, '<', $file) or return '';
  my $data = ''; read($fh, $data, $max); return $data
}

sub keeper {
  my ($ready) = @_;
  setpgrp(0, 0);
  open(my $lock, '>', "$dir/lock") or exit(1);
  flock($lock, LOCK_EX);
  open(STDIN, '<', '/dev/null'); open(STDOUT, '>', '/dev/null'); open(STDERR, '>', '/dev/null');
  pipe(my $out_r, my $out_w); pipe(my $err_r, my $err_w);
  my $child = fork();
  if (defined $child && $child == 0) {
    open(STDIN, '<', "$dir/stdin"); open(STDOUT, '>&', $out_w); open(STDERR, '>&', $err_w);
    exec('timeout', '--kill-after=5', $seconds, @command) or exit(127);
  }
  close($out_w); close($err_w);
  open(my $pgid, '>', "$dir/pgid.new"); print $pgid $child; close($pgid); rename("$dir/pgid.new", "$dir/pgid");
  print $ready "1"; close($ready);
  my %file = (fileno($out_r) => "$dir/stdout", fileno($err_r) => "$dir/stderr");
  my %kept = map { $_ => 0 } keys %file;
  my %sink; for my $fd (keys %file) { open($sink{$fd}, '>', $file{$fd}) }
  my $select = IO::Select->new($out_r, $err_r);
  my ($status, $drain_until);
  while ($select->count) {
    for my $fh ($select->can_read(0.2)) {
      my $fd = fileno($fh);
      my $n = sysread($fh, my $chunk, 65536);
      if (!$n) { $select->remove($fh); close($fh); next }
      my $room = $limit + 1 - $kept{$fd};
      if ($room > 0) { syswrite($sink{$fd}, substr($chunk, 0, $room)); $kept{$fd} += length(substr($chunk, 0, $room)) }
    }
    if (!defined $status && waitpid($child, WNOHANG) == $child) { $status = $?; $drain_until = time + 2 }
    # A background process of the command may hold the pipes open: its output is not waited for long.
    last if defined $drain_until && time > $drain_until;
  }
  if (!defined $status) { waitpid($child, 0); $status = $? }
  my $code = $status & 127 ? 128 + ($status & 127) : $status >> 8;
  open(my $result, '>', "$dir/result"); printf $result "%d %.6f\n", $code, time; close($result);
  exit(0);
}

mkdir($calls, 0700);
my $fresh = mkdir($dir, 0700);
if ($fresh) {
  for my $old (glob("$calls/*")) {
    next if $old eq $dir || !-e "$old/result";
    unlink(glob("$old/*")); rmdir($old);
  }
  open(my $stdin, '>', "$dir/stdin") or lost('the call could not be written to the sandbox /tmp');
  binmode(STDIN); local $/; my $data = <STDIN>; print $stdin $data if defined $data;
  close($stdin) or lost('the call could not be written to the sandbox /tmp');
  pipe(my $ready_r, my $ready_w);
  my $keeper = fork();
  lost('the sandbox could not start the call') unless defined $keeper;
  if ($keeper == 0) { close($ready_r); keeper($ready_w) }
  close($ready_w);
  my $started = <$ready_r>;
} else {
  my $until = time + 10;
  select(undef, undef, undef, 0.01) while !-e "$dir/pgid" && time < $until;
  lost('the call was claimed but its command never started') unless -e "$dir/pgid";
}
open(my $lock, '<', "$dir/lock") or lost('the call has no lock');
flock($lock, LOCK_SH);
lost('the command ended without a result (its keeper was killed)') unless -e "$dir/result";
my ($code, $ended) = split(' ', slurp("$dir/result", 100));
my ($out, $err) = (slurp("$dir/stdout", $limit + 1), slurp("$dir/stderr", $limit + 1));
my $truncated = length($out) > $limit || length($err) > $limit ? 'true' : 'false';
printf('{"exitCode":%d,"truncated":%s,"endedAt":%s,"reattached":%s,"stdout":"%s","stderr":"%s"}',
  $code, $truncated, $ended, $fresh ? 'false' : 'true',
  encode_base64(substr($out, 0, $limit), ''), encode_base64(substr($err, 0, $limit), ''));`;
