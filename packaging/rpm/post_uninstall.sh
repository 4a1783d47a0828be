# pgbackup: backups in /var/lib/pgbackup are data and are kept.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
