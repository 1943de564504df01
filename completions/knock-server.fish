# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_knock_server_global_optspecs
    string join \n i/interface= d/daemon c/config= D/debug l/lookup p/pidfile= g/logfile= v/verbose 4/only-ip-v4 check state-file= instance= runtime-dir= man completions= h/help V/version
end

function __fish_knock_server_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_knock_server_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_knock_server_using_subcommand
    set -l cmd (__fish_knock_server_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c knock-server -n "__fish_knock_server_needs_command" -s i -l interface -d 'Network interface to listen on [default: the config\'s Interface, else `any`: every interface, IPv4 and IPv6]' -r
complete -c knock-server -n "__fish_knock_server_needs_command" -s c -l config -d 'Config file, knockd.conf or TOML (chosen by extension, then by content) [default: /etc/knock/server.toml if it exists, else /etc/knockd.conf]' -r -F
complete -c knock-server -n "__fish_knock_server_needs_command" -s p -l pidfile -d 'Pid file [default: the config\'s PidFile, else /var/run/knockd.pid with -d]' -r -F
complete -c knock-server -n "__fish_knock_server_needs_command" -s g -l logfile -d 'Log file, knockd\'s format [default: the config\'s LogFile]' -r -F
complete -c knock-server -n "__fish_knock_server_needs_command" -l state-file -d 'Where pending stop commands are kept, so that a crash or kill never leaves a door open: the next start runs them on time [default: /var/lib/knock-server/INSTANCE.state]' -r -F
complete -c knock-server -n "__fish_knock_server_needs_command" -l instance -d 'Instance name: names the pid file, state file, nftables table and control socket, so that several daemons can run on one host (e.g. one per interface)' -r
complete -c knock-server -n "__fish_knock_server_needs_command" -l runtime-dir -d 'Directory of the control socket and the instance lock' -r -F
complete -c knock-server -n "__fish_knock_server_needs_command" -l completions -d 'Print the completion script for SHELL (bash, zsh, fish, elvish, powershell) and exit' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c knock-server -n "__fish_knock_server_needs_command" -s d -l daemon -d 'Detach and run in the background (under systemd, stay in the foreground)'
complete -c knock-server -n "__fish_knock_server_needs_command" -s D -l debug -d 'Output debug messages (every packet the filter lets through)'
complete -c knock-server -n "__fish_knock_server_needs_command" -s l -l lookup -d 'Look up DNS names of knockers for the log. A security risk: the lookup itself tells the knocker\'s name server that a first port was hit'
complete -c knock-server -n "__fish_knock_server_needs_command" -s v -l verbose -d 'Be verbose: log each hit (with source port and TCP sequence number), why attempts broke, ignored packets and command output'
complete -c knock-server -n "__fish_knock_server_needs_command" -s 4 -l only-ip-v4 -d 'Do not track IPv6'
complete -c knock-server -n "__fish_knock_server_needs_command" -l check -d 'Check the config, print the doors it defines, and exit (0 if valid, 2 if not)'
complete -c knock-server -n "__fish_knock_server_needs_command" -l man -d 'Print the man page (roff) and exit'
complete -c knock-server -n "__fish_knock_server_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c knock-server -n "__fish_knock_server_needs_command" -s V -l version -d 'Print version'
complete -c knock-server -n "__fish_knock_server_needs_command" -f -a "status" -d 'Show a running daemon\'s open doors, attempts in progress per door, and counters'
complete -c knock-server -n "__fish_knock_server_needs_command" -f -a "close" -d 'Close a door now (run its stop command, delete its nftables elements)'
complete -c knock-server -n "__fish_knock_server_needs_command" -f -a "keygen" -d 'Write a new 256-bit key for a rotating door (to FILE, created mode 600, or to stdout)'
complete -c knock-server -n "__fish_knock_server_needs_command" -f -a "pair" -d 'Print a rotating door\'s settings for a client\'s profile, with its key to copy'
complete -c knock-server -n "__fish_knock_server_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c knock-server -n "__fish_knock_server_using_subcommand status" -l instance -d 'Instance name: names the pid file, state file, nftables table and control socket, so that several daemons can run on one host (e.g. one per interface)' -r
complete -c knock-server -n "__fish_knock_server_using_subcommand status" -l runtime-dir -d 'Directory of the control socket and the instance lock' -r -F
complete -c knock-server -n "__fish_knock_server_using_subcommand status" -l json -d 'Print the daemon\'s answer as JSON (one object), for scripts and monitoring'
complete -c knock-server -n "__fish_knock_server_using_subcommand status" -s h -l help -d 'Print help'
complete -c knock-server -n "__fish_knock_server_using_subcommand close" -l instance -d 'Instance name: names the pid file, state file, nftables table and control socket, so that several daemons can run on one host (e.g. one per interface)' -r
complete -c knock-server -n "__fish_knock_server_using_subcommand close" -l runtime-dir -d 'Directory of the control socket and the instance lock' -r -F
complete -c knock-server -n "__fish_knock_server_using_subcommand close" -l all -d 'Close every open door, for everyone'
complete -c knock-server -n "__fish_knock_server_using_subcommand close" -s h -l help -d 'Print help'
complete -c knock-server -n "__fish_knock_server_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c knock-server -n "__fish_knock_server_using_subcommand pair" -s c -l config -d 'Config file [default: /etc/knock/server.toml if it exists, else /etc/knockd.conf]' -r -F
complete -c knock-server -n "__fish_knock_server_using_subcommand pair" -l key-path -d 'Where the client will keep the key' -r
complete -c knock-server -n "__fish_knock_server_using_subcommand pair" -s h -l help -d 'Print help'
complete -c knock-server -n "__fish_knock_server_using_subcommand help; and not __fish_seen_subcommand_from status close keygen pair help" -f -a "status" -d 'Show a running daemon\'s open doors, attempts in progress per door, and counters'
complete -c knock-server -n "__fish_knock_server_using_subcommand help; and not __fish_seen_subcommand_from status close keygen pair help" -f -a "close" -d 'Close a door now (run its stop command, delete its nftables elements)'
complete -c knock-server -n "__fish_knock_server_using_subcommand help; and not __fish_seen_subcommand_from status close keygen pair help" -f -a "keygen" -d 'Write a new 256-bit key for a rotating door (to FILE, created mode 600, or to stdout)'
complete -c knock-server -n "__fish_knock_server_using_subcommand help; and not __fish_seen_subcommand_from status close keygen pair help" -f -a "pair" -d 'Print a rotating door\'s settings for a client\'s profile, with its key to copy'
complete -c knock-server -n "__fish_knock_server_using_subcommand help; and not __fish_seen_subcommand_from status close keygen pair help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
