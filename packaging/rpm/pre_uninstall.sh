# pgbackup: on removal (not upgrade) stop and disable the timers.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now pgbackup.timer pgbackup-verify.timer || :
fi
