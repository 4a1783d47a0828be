# pgbackup: user, backup directory, config readable by the pgbackup group, timers enabled.
systemd-sysusers pgbackup.conf || :
systemd-tmpfiles --create pgbackup.conf || :
if [ "$1" -eq 1 ] && [ -f /etc/pgbackup/pgbackup.toml ]; then
    chgrp pgbackup /etc/pgbackup/pgbackup.toml && chmod 0640 /etc/pgbackup/pgbackup.toml || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now pgbackup.timer pgbackup-verify.timer || :
    fi
fi
