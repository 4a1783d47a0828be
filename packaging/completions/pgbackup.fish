# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pgbackup_global_optspecs
    string join \n c/config= v/verbose q/quiet color= h/help V/version
end

function __fish_pgbackup_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pgbackup_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pgbackup_using_subcommand
    set -l cmd (__fish_pgbackup_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pgbackup -n "__fish_pgbackup_needs_command" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_needs_command" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_needs_command" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "backup" -d 'Back up the configured databases (all of them, or those named with --db)'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "run" -d 'Back up the configured databases (all of them, or those named with --db)'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "verify" -d 'Verify backups: checksum, decompression, completeness, manifest; optionally a test restore'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "restore" -d 'Restore a backup (verified first) into its database or another one'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "list" -d 'List backups'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "prune" -d 'Apply the retention policy: delete old backups, never below keep-min'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "status" -d 'Show configuration, storage and the state of every database'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "check" -d 'Health probe for monitoring: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios plugin convention)'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "config" -d 'Check or show the configuration'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "generate" -d 'Write man pages or shell completions (for packaging)'
complete -c pgbackup -n "__fish_pgbackup_needs_command" -f -a "serve" -d 'Not available yet: schedule backups with the systemd timers'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -l db -d 'Back up only this database (by configured name); repeatable' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -l description -d 'Free text stored in the manifest' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -l retention -d 'Keep backups for this many days (overrides [retention] keep-days and BACKUP_RETENTION_DAYS)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -l only -d 'Only the PostgreSQL databases (postgres), or only the [[redis]] servers (redis); pgbackup-redis.timer runs `backup --only redis`' -r -f -a "postgres\t'The PostgreSQL databases (and the cluster globals)'
redis\t'The [[redis]] servers'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -l force -d 'Ignore respawn protection (also: FORCE_BACKUP=true)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand backup" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -l db -d 'Back up only this database (by configured name); repeatable' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -l description -d 'Free text stored in the manifest' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -l retention -d 'Keep backups for this many days (overrides [retention] keep-days and BACKUP_RETENTION_DAYS)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -l only -d 'Only the PostgreSQL databases (postgres), or only the [[redis]] servers (redis); pgbackup-redis.timer runs `backup --only redis`' -r -f -a "postgres\t'The PostgreSQL databases (and the cluster globals)'
redis\t'The [[redis]] servers'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -l force -d 'Ignore respawn protection (also: FORCE_BACKUP=true)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand run" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l db -d 'Only backups of this database; repeatable' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l all -d 'Every backup, not only the latest of each database'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l latest -d 'The latest backup of each database (the default)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l test-restore -d 'Also restore into a scratch database, compare row counts with the manifest, drop it'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l keep-scratch -d 'With --test-restore: keep the scratch database for inspection (its name is printed)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -l json -d 'Machine-readable output (a JSON array)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand verify" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l db -d 'The database whose backup to restore (configured name)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l backup -d 'A backup by name (e.g. clara_20261123_020013.sql.gz)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l file -d 'A backup file by path (its .sha256 sidecar must sit beside it)' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l target -d 'Restore into this database instead (libpq URI or keyword string); the original stays untouched. For a Redis snapshot: redis://[user@]host:port or unix:///path (the password of the configured [[redis]] entry, else REDISCLI_AUTH)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s j -l jobs -d 'Custom format: pg_restore jobs in parallel (default: the CPUs)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l schema -d 'Custom format: restore only this schema (repeatable)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l table -d 'Custom format: restore only this table (repeatable; with its data)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l temp-dir -d 'Custom format: where the decompressed archive goes while pg_restore reads it (default: the backup root)' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l redis-dir -d 'A Redis snapshot into the data directory of a STOPPED Redis (its `dir`) instead of by replication: dump.rdb, and an AOF base with its manifest for appendonly yes; the files there are moved aside first' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l latest -d 'The latest backup of --db'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l create -d 'Create the target database if it does not exist'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l clean -d 'Drop and recreate the target first (its connections are terminated)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s y -l yes -d 'Do not ask for confirmation'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l no-safety-backup -d 'Skip the safety backup of the target before a destructive restore'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l no-sidecar -l unverified -d 'With --file: restore a dump that has no .sha256 sidecar (a `pg_dump | gzip` file of an old script); its decompression and completion trailer are still checked first'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l single-transaction -d 'Restore in one transaction: all or nothing'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l no-owner -d 'Skip ownership and privilege statements (for a server without the original roles)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l globals -d 'Restore the cluster globals (roles, memberships, role settings, tablespaces) of the latest `_globals` backup (or --backup/--file) into the server of --target (default: the configured databases\' server)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -l dry-run -d 'With --globals: show what would be created and altered, change nothing'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand restore" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -l db -d 'Only this database' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -l json -d 'Machine-readable output (a JSON array)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand list" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -l db -d 'Only this database; repeatable' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -l retention -d 'Keep backups for this many days (overrides [retention] keep-days and BACKUP_RETENTION_DAYS)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -s n -l dry-run -d 'Show what would be deleted, delete nothing'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -l json -d 'Machine-readable output (a JSON array)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand prune" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -l json -d 'Machine-readable output (a JSON object)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand status" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -l max-age -d 'CRITICAL when the newest backup of a database is older than this' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -l db -d 'Only this database; repeatable' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -l min-free-percent -d 'WARNING below this much free space on the backup file system (CRITICAL below half of it)' -r
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -l no-connect -d 'Do not test that the configured databases accept connections'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand check" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -f -a "check" -d 'Validate the configuration; list every problem and exit 78 if there is one'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and not __fish_seen_subcommand_from check show" -f -a "show" -d 'Print the effective configuration (file + environment), secrets masked'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from check" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from check" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from show" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from show" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -f -a "man" -d 'Man pages (pgbackup.1, pgbackup-<command>.1, pgbackup-verify.1) into DIR'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and not __fish_seen_subcommand_from man completions" -f -a "completions" -d 'bash, zsh and fish completions into DIR'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from man" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from man" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from man" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from man" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from man" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from completions" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from completions" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from completions" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from completions" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand generate; and __fish_seen_subcommand_from completions" -s V -l version -d 'Print version'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand serve" -s c -l config -d 'Config file [default: $PGBACKUP_CONFIG, else /etc/pgbackup/pgbackup.toml]' -r -F
complete -c pgbackup -n "__fish_pgbackup_using_subcommand serve" -l color -d 'Colour ok, warnings and errors: auto (on a terminal, unless NO_COLOR is set), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR is set'
always\t'Always'
never\t'Never'"
complete -c pgbackup -n "__fish_pgbackup_using_subcommand serve" -s v -l verbose -d 'More output (repeat for more)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand serve" -s q -l quiet -d 'Less output: only warnings and errors (twice: only errors)'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand serve" -s h -l help -d 'Print help'
complete -c pgbackup -n "__fish_pgbackup_using_subcommand serve" -s V -l version -d 'Print version'
