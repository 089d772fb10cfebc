#!/usr/bin/env bash
# Install (first run only) and start a local Redmine for reconciler's tests and examples:
# Debian's redmine + redmine-sqlite packages, REST API enabled, served by puma as www-data on
# 127.0.0.1:${REDMINE_PORT:-3000}. Idempotent: every step checks before it acts, so a second run
# only (re)starts puma if it is not running. Needs root (apt, debconf, runuser).
#
#   lines=$(sudo bash scripts/redmine-up.sh) && eval "$lines"   # as root: without sudo
# (not eval "$(...)": eval of nothing returns 0, hiding a failure). It exports nothing by itself; prints:
#   REDMINE_URL=http://127.0.0.1:3000
#   REDMINE_API_KEY=<40 hex digits: the admin user's API key>
#
# Progress and timings go to stderr. Runtime state (logs, pid file, cached key) lives in
# ${PEERS_HOME:-${TMPDIR:-/tmp}/reconciler-peers}/redmine. Stop with scripts/redmine-down.sh.
set -euo pipefail
PORT=${REDMINE_PORT:-3000}
export REDMINE_INSTANCE=${REDMINE_INSTANCE:-default}
STATE=${PEERS_HOME:-${TMPDIR:-/tmp}/reconciler-peers}/redmine
BASE=http://127.0.0.1:$PORT
APP=/usr/share/redmine
PIDF=$STATE/puma.pid
KEY_FILE=$STATE/admin_api_key

if [ "$(id -u)" -ne 0 ]; then
  echo "redmine-up.sh needs root (it installs Debian packages and runs Redmine as www-data)" >&2
  exit 1
fi
mkdir -p "$STATE"

now_ms() { date +%s%3N; }
T_ALL=$(now_ms)
step() { STEP_NAME=$1; STEP_T0=$(now_ms); }
done_step() { local d=$(( $(now_ms) - STEP_T0 )); printf '[%4d.%01ds] %s\n' $((d / 1000)) $((d % 1000 / 100)) "$STEP_NAME" >&2; }
as_www() { runuser -u www-data -- env HOME="$STATE" REDMINE_INSTANCE="$REDMINE_INSTANCE" RAILS_ENV=production "$@"; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Debian bookworm's ruby3.1 security update ships a bundler (2.3.27) that treats every Debian gem
# installed as a gemspec without a gems/<name>-<version> folder (racc, ruby-mail, ...) as deleted,
# so redmine's postinst `bundle install --local` fails with "Could not find racc-1.6.2.gem".
# Creating the empty folders makes bundler accept them; dpkg can then finish configuring redmine.
fix_gem_dirs() {
  local n=0 d s g
  for d in /usr/share/rubygems-integration/all /usr/share/rubygems-integration/3.1.0 \
           /usr/lib/x86_64-linux-gnu/rubygems-integration/3.1.0 /usr/lib/aarch64-linux-gnu/rubygems-integration/3.1.0; do
    [ -d "$d/specifications" ] || continue
    for s in "$d"/specifications/*.gemspec; do
      g="$d/gems/$(basename "$s" .gemspec)"
      [ -d "$g" ] || { mkdir -p "$g"; n=$((n + 1)); }
    done
  done
  echo "  created $n empty gem folders" >&2
}

PACKAGES=(redmine redmine-sqlite sqlite3 puma curl)
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done

if [ ${#missing[@]} -gt 0 ]; then
  step "apt: package lists"
  if ! apt-cache policy redmine 2>/dev/null | grep -q 'Candidate: [0-9]'; then apt-get update -qq; fi
  done_step

  step "apt-get install ${missing[*]} (debconf preseeded for sqlite3)"
  # After an earlier preseed + purge debconf keeps the templates but drops the questions, and
  # debconf-set-selections then fails with "Cannot find a question": (re)create them first.
  perl -MDebconf::Db -MDebconf::Question -e 'Debconf::Db->load;
    for (@ARGV) { my ($n, $t) = split /=/; Debconf::Question->get($n) or Debconf::Question->new($n, "redmine", $t) }
    Debconf::Db->save' redmine/instances/default/dbconfig-install=boolean \
    redmine/instances/default/database-type=select redmine/instances/default/db/basepath=string \
    redmine/instances/default/db/dbname=string
  debconf-set-selections <<'PRESEED'
redmine redmine/instances/default/dbconfig-install boolean true
redmine redmine/instances/default/database-type select sqlite3
redmine redmine/instances/default/db/basepath string /var/lib/dbconfig-common/sqlite3/redmine/instances/default
redmine redmine/instances/default/db/dbname string redmine_default
PRESEED
  export DEBIAN_FRONTEND=noninteractive
  # The first pass may fail in redmine's postinst (the bundler trap above): that is expected.
  apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$STATE/apt.log" 2>&1 || true
  fix_gem_dirs
  dpkg --configure -a >>"$STATE/apt.log" 2>&1 || true
  apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$STATE/apt.log" 2>&1 || {
    echo "apt-get install failed; the last lines of $STATE/apt.log:" >&2; tail -n 30 "$STATE/apt.log" >&2; exit 1; }
  installed redmine || { echo "redmine is not configured; see $STATE/apt.log" >&2; tail -n 30 "$STATE/apt.log" >&2; exit 1; }
  done_step
fi

# 'puma' must be in the bundle, or `bundle exec puma` refuses to start.
if ! grep -qs "gem 'puma'" "$APP/Gemfile.local"; then
  step "Gemfile.local: add puma, refresh Gemfile.lock"
  echo "gem 'puma'" >> "$APP/Gemfile.local"
  fix_gem_dirs
  (cd "$APP" && rm -f /var/lib/redmine/Gemfile.lock && bundle install --local --quiet >"$STATE/bundle.log" 2>&1) || {
    echo "bundle install failed; see $STATE/bundle.log" >&2; tail -n 20 "$STATE/bundle.log" >&2; exit 1; }
  chown www-data:www-data /var/lib/redmine/Gemfile.lock
  done_step
fi

chown www-data:www-data "$STATE"
if [ ! -s "$KEY_FILE" ]; then
  step "rails runner: default data, REST API on, admin API key"
  # Loads Redmine's default trackers/statuses/priorities/roles if the database has none, enables
  # the REST API, clears admin's forced password change and prints admin's API key (created on demand).
  as_www bash -c "cd $APP && bundle exec rails runner '
    if Tracker.count == 0
      Redmine::DefaultData::Loader.load(\"en\")
    end
    Setting.rest_api_enabled = \"1\"
    u = User.find_by_login(\"admin\")
    u.must_change_passwd = false
    u.save!(validate: false)
    print \"KEY=\" + u.api_key' " >"$STATE/runner.out" 2>"$STATE/runner.err" || {
    echo "rails runner failed; see $STATE/runner.err" >&2; tail -n 20 "$STATE/runner.err" >&2; exit 1; }
  grep -Eo 'KEY=[0-9a-f]{40}' "$STATE/runner.out" | tail -n 1 | cut -d= -f2 >"$KEY_FILE.tmp"
  [ -s "$KEY_FILE.tmp" ] || { echo "no API key in the rails runner output ($STATE/runner.out)" >&2; exit 1; }
  chmod 600 "$KEY_FILE.tmp"
  mv "$KEY_FILE.tmp" "$KEY_FILE"
  done_step
fi
KEY=$(cat "$KEY_FILE")

step "puma on $BASE"
if ! { [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }; then
  rm -f "$PIDF"
  # puma directly on config.ru: 'rails server' would try to create $APP/tmp, which www-data cannot.
  as_www setsid bash -c "cd $APP && exec bundle exec puma -e production -b tcp://127.0.0.1:$PORT --pidfile $PIDF -t 2:8 config.ru" \
    >"$STATE/server.log" 2>&1 </dev/null &
fi
code=000
for _ in $(seq 1 1200); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Redmine-API-Key: $KEY" "$BASE/users/current.json" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
if [ "$code" != 200 ]; then
  echo "Redmine is not answering on $BASE (last HTTP status $code); the last lines of $STATE/server.log:" >&2
  tail -n 20 "$STATE/server.log" >&2
  exit 1
fi
done_step
d=$(( $(now_ms) - T_ALL )); printf '[%4d.%01ds] total\n' $((d / 1000)) $((d % 1000 / 100)) >&2
echo "REDMINE_URL=$BASE"
echo "REDMINE_API_KEY=$KEY"
