# install.sh of the linegate-edge tarball, for line PCs without dpkg. Run from the unpacked directory:
#   ./install.sh [--root DIR]             install or upgrade (keeps an existing config and the outbox)
#   ./install.sh [--root DIR] --uninstall remove binary and unit; keep config and outbox
#   ./install.sh [--root DIR] --purge     also remove the outbox (/var/lib/linegate) and the config
# --root DIR installs into DIR instead of / (a scratch root or an image being prepared; nothing is started).

ROOT=""
action=install
usage() { sed -n 's/^#   //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage; ROOT=${2%/}; shift 2 ;;
    --root=*) ROOT=${1#--root=}; ROOT=${ROOT%/}; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) action=purge; shift ;;
    -h | --help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it creates a system user and installs a systemd unit)" >&2
  exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=/usr/local/bin/linegate-edge
UNIT=/etc/systemd/system/$SERVICE
DOC=/usr/local/share/doc/linegate-edge/README.md

# Installs $1 as $2 with mode $3, replacing atomically (a running binary is not overwritten in place).
put() {
  mkdir -p "$(dirname "$ROOT$2")"
  cp "$1" "$ROOT$2.new.$$"
  chmod "$3" "$ROOT$2.new.$$"
  mv -f "$ROOT$2.new.$$" "$ROOT$2"
}

# Installs a config file unless the operator has one: then the new default goes next to it as FILE.new.
put_config() {
  if [ -e "$ROOT$2" ]; then
    if cmp -s "$1" "$ROOT$2"; then return; fi
    put "$1" "$2.new" 0640
    say "kept $2 (yours); the new default is $2.new"
  else
    put "$1" "$2" 0640
    say "installed $2"
  fi
}

stop_service() {
  if systemd_live && systemctl is-active --quiet "$SERVICE"; then
    systemctl stop "$SERVICE"
    say "stopped $SERVICE (waiting results stay in $STATE_DIR)"
  fi
}

remove_file() {
  if [ -e "$ROOT$1" ]; then
    rm -f "$ROOT$1"
    say "removed $1"
  fi
}

case "$action" in
  install)
    first=yes
    [ -e "$ROOT$BIN" ] && first=no
    ensure_user
    stop_service
    put "$HERE/linegate-edge" "$BIN" 0755
    say "installed $BIN ($("$ROOT$BIN" --version 2>/dev/null || echo "version $(cat "$HERE/VERSION")"))"
    put "$HERE/README.md" "$DOC" 0644
    sed -e "s#/usr/bin/linegate-edge#$BIN#" -e "s#/usr/share/doc/linegate-edge/README.md#$DOC#" \
      "$HERE/linegate-edge.service" >"$HERE/.unit.$$"
    put "$HERE/.unit.$$" "$UNIT" 0644
    rm -f "$HERE/.unit.$$"
    say "installed $UNIT"
    put_config "$HERE/edge.toml" "$CONF_DIR/edge.toml"
    put_config "$HERE/edge.env" "$CONF_DIR/edge.env"
    protect_config
    ensure_state_dir
    say "state directory $STATE_DIR (owner linegate, 0750)"
    if systemd_live; then systemctl daemon-reload; fi
    if [ "$first" = yes ]; then
      systemctl_offline enable "$SERVICE"
    fi
    start_if_configured "$BIN"
    ;;
  uninstall | purge)
    stop_service
    systemctl_offline disable "$SERVICE" >/dev/null 2>&1 || true
    remove_file "$UNIT"
    remove_file "$BIN"
    remove_file "$DOC"
    rmdir "$ROOT$(dirname "$DOC")" 2>/dev/null || true
    if systemd_live; then systemctl daemon-reload; fi
    if [ "$action" = purge ]; then
      remove_dir "$STATE_DIR" "the outbox: results not yet forwarded to Kafka are lost"
      remove_dir "$CONF_DIR" "the station config"
      say "kept the system user linegate (files elsewhere may still belong to it): userdel linegate removes it"
    else
      say "kept $CONF_DIR and $STATE_DIR (the outbox); --purge removes them"
    fi
    ;;
esac
