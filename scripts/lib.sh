# shellcheck shell=bash
# What the scripts share, sourced after `cd` to the repository (`. scripts/lib.sh`):
#
# - Cleanup: `at_exit CMD...` runs CMD (a shell string) when the script exits, the last one
#   registered first; lib.sh owns the EXIT trap, so a script registers instead of trapping.
# - Namespaces: `netns_up NAME` makes a network namespace (loopback up) that is deleted at
#   exit with everything still running in it; `veth NS DEV ADDR NS DEV ADDR` joins two with a
#   veth pair; `link_up CLIENT SERVER` is the usual test link, eth0 on both sides,
#   198.18.0.1/24 on the client and 198.18.0.2/24 on the server (198.18.0.0/15, the
#   benchmarking range: nothing leaves this machine).
# - Checks: `check NAME CMD...` passes when CMD succeeds and shows its output when it fails;
#   `pass NAME` and `fail NAME [OUTPUT]` count by hand; `summary NAME` prints the closing line
#   `NAME: N passed, N failed` that scripts/test reads, and fails if anything failed.

# --- cleanup -------------------------------------------------------------------------------

_lib_exit=()
at_exit() { _lib_exit+=("$*"); }
_lib_on_exit() {
  local i
  for ((i = ${#_lib_exit[@]} - 1; i >= 0; i--)); do
    eval "${_lib_exit[i]}" || true
  done
}
trap _lib_on_exit EXIT

# --- namespaces ----------------------------------------------------------------------------

# netns_up NAME: a fresh namespace NAME (put $$ in it: it must be unique) with loopback up,
# deleted at exit by netns_down.
netns_up() {
  ip netns del "$1" 2>/dev/null || true # left over from a crashed run of this same pid
  ip netns add "$1"
  at_exit netns_down "$1"
  ip -n "$1" link set lo up
}

# netns_down NAME: kills what still runs in NAME (or the namespace lingers), then deletes it.
netns_down() {
  ip netns pids "$1" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$1" 2>/dev/null || true
}

# veth NS_A DEV_A ADDR_A NS_B DEV_B ADDR_B: a veth pair from DEV_A in NS_A to DEV_B in NS_B,
# both up, each with its address (`198.18.0.1/24`; empty for none).
_lib_veth=0
veth() {
  local a=$1 dev_a=$2 addr_a=$3 b=$4 dev_b=$5 addr_b=$6
  # Interface names are at most 15 bytes; these exist only for a moment in the root namespace.
  local tmp_a="kla$$x$_lib_veth" tmp_b="klb$$x$_lib_veth"
  _lib_veth=$((_lib_veth + 1))
  ip link add "$tmp_a" type veth peer name "$tmp_b"
  ip link set "$tmp_a" netns "$a"
  ip link set "$tmp_b" netns "$b"
  ip -n "$a" link set "$tmp_a" name "$dev_a"
  ip -n "$b" link set "$tmp_b" name "$dev_b"
  [ -z "$addr_a" ] || ip -n "$a" addr add "$addr_a" dev "$dev_a"
  [ -z "$addr_b" ] || ip -n "$b" addr add "$addr_b" dev "$dev_b"
  ip -n "$a" link set "$dev_a" up
  ip -n "$b" link set "$dev_b" up
}

# link_up CLIENT SERVER: both namespaces and the test link between them (eth0 on each side,
# 198.18.0.1/24 on the client, 198.18.0.2/24 on the server).
link_up() {
  netns_up "$1"
  netns_up "$2"
  veth "$1" eth0 198.18.0.1/24 "$2" eth0 198.18.0.2/24
}

# --- checks --------------------------------------------------------------------------------

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -z "${2:-}" ] || sed 's/^/     | /' <<<"$2"; }
check() { # NAME COMMAND...: passes when the command succeeds, shows its output otherwise
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}
# summary NAME: the closing line, `NAME: N passed, N failed`; fails when any check failed.
summary() {
  echo "$1: $passed passed, $failed failed"
  ((failed == 0))
}
