# linegate-edge install helpers shared by the .deb maintainer scripts and the tarball's install.sh
# (cross/package.sh puts this file in front of each). ROOT is the target root ("" = this machine): dpkg
# sets DPKG_ROOT for `dpkg --root DIR --force-script-chrootless`, install.sh takes --root DIR.

SERVICE=linegate-edge.service
STATE_DIR=/var/lib/linegate
CONF_DIR=/etc/linegate

say() { echo "linegate-edge: $*"; }

# The live machine with systemd running (not a scratch root, not a container without systemd).
systemd_live() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# systemctl for offline operations (enable/disable), pointed at ROOT when there is one.
systemctl_offline() {
  if command -v systemctl >/dev/null 2>&1; then
    if [ -n "$ROOT" ]; then systemctl --root="$ROOT" "$@"; else systemctl "$@"; fi
  else
    say "systemctl not found: skipped 'systemctl $*'"
  fi
}

# Prints field $2 (3 = uid, 4 = gid / 3 for groups) of entry $1 in passwd or group, looked up in ROOT's files
# (names must not be resolved through this machine's NSS when installing into another root).
id_field() {
  db=$1 name=$2 field=$3
  if [ -z "$ROOT" ]; then
    getent "$db" "$name" | cut -d: -f"$field"
  else
    awk -F: -v n="$name" -v f="$field" '$1 == n { print $f }' "$ROOT/etc/$db" 2>/dev/null
  fi
}

# Creates the system user and group linegate (home /var/lib/linegate, no login) once, and puts it into
# dialout (serial ports for Modbus RTU) when that group exists.
ensure_user() {
  prefix=""
  [ -n "$ROOT" ] && prefix="--prefix $ROOT"
  if [ -z "$(id_field passwd linegate 1)" ]; then
    # shellcheck disable=SC2086
    useradd $prefix --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "linegate edge agent" linegate
    say "created system user linegate"
  fi
  if [ -n "$(id_field group dialout 1)" ]; then
    members=$(id_field group dialout 4)
    case ",$members," in
      *,linegate,*) ;;
      *)
        # shellcheck disable=SC2086
        usermod $prefix --append --groups dialout linegate
        say "added linegate to group dialout (serial ports for Modbus RTU)"
        ;;
    esac
  fi
}

# The outbox directory: owned by linegate, 0750. Never emptied here: it holds results not yet in Kafka.
ensure_state_dir() {
  uid=$(id_field passwd linegate 3)
  gid=$(id_field group linegate 3)
  mkdir -p "$ROOT$STATE_DIR"
  chown "$uid:$gid" "$ROOT$STATE_DIR"
  chmod 0750 "$ROOT$STATE_DIR"
}

# The config may hold Kafka credentials: readable by root and group linegate only; the env file by root only
# (systemd reads it before dropping privileges).
protect_config() {
  gid=$(id_field group linegate 3)
  if [ -f "$ROOT$CONF_DIR/edge.toml" ]; then
    chown "0:$gid" "$ROOT$CONF_DIR/edge.toml"
    chmod 0640 "$ROOT$CONF_DIR/edge.toml"
  fi
  if [ -f "$ROOT$CONF_DIR/edge.env" ]; then
    chown 0:0 "$ROOT$CONF_DIR/edge.env"
    chmod 0600 "$ROOT$CONF_DIR/edge.env"
  fi
}

# Whether the station is configured: the config validates with the env file loaded (station id set).
# Prints the reason when it is not.
config_problem() {
  binary=$1
  if [ -n "$ROOT" ]; then
    echo "installed into $ROOT, not this machine"
    return 0
  fi
  out=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c \
    "set -a; . '$CONF_DIR/edge.env' && exec '$binary' check-config '$CONF_DIR/edge.toml'" 2>&1) && return 1
  echo "$out" | tail -n 1
}

# Starts (or restarts) the enabled service when the station is configured; otherwise says what to do.
start_if_configured() {
  binary=$1
  if problem=$(config_problem "$binary"); then
    say "not started: $problem"
    say "set LINEGATE_STATION_ID in $CONF_DIR/edge.env (and Kafka/MQTT there or in $CONF_DIR/edge.toml), then: systemctl start linegate-edge"
  elif ! systemd_live; then
    say "configured; systemd is not running here, so the service was not started"
  elif systemctl is-enabled --quiet "$SERVICE"; then
    systemctl restart "$SERVICE"
    say "started $SERVICE (check: systemctl status linegate-edge; logs: journalctl -u linegate-edge)"
  else
    say "configured but disabled: not started (systemctl enable --now linegate-edge)"
  fi
}

# Lists what a directory holds, for the purge messages.
describe_dir() {
  dir=$1
  count=$(find "$ROOT$dir" -type f 2>/dev/null | wc -l)
  names=$(find "$ROOT$dir" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort | tr '\n' ' ')
  echo "$count files: ${names% }"
}

# Removes a directory and says so, naming what it held.
remove_dir() {
  dir=$1 what=$2
  if [ -e "$ROOT$dir" ]; then
    say "removing $dir ($what; $(describe_dir "$dir"))"
    rm -rf "$ROOT$dir"
    say "removed $dir"
  fi
}
