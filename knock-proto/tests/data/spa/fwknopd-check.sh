#!/bin/sh
# Feeds packets built by knock's encoder (spa::encode, through the ignored test
# `packets_for_fwknopd` in knock-proto/tests/spa.rs) to Debian's fwknopd (fwknop-server 2.6.10)
# and checks that it accepts each: `fwknopd --test --pcap-file` reads them from a capture file,
# so no packet goes on any network and no firewall rule is made. Then the replay cache across a
# restart, with rules made in a network namespace of its own. Needs root, fwknopd, python3,
# cargo; run from the workspace:
#
#   knock-proto/tests/data/spa/fwknopd-check.sh
#
# One stanza per packet, with the packet's keys; passes if fwknopd gets through every check
# for every packet, and refuses a replay of the first after a restart.
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SPA_OUT=$work/packets.txt cargo test -q -p knock-proto --test spa packets_for_fwknopd \
    >"$work/cargo.log" 2>&1 || { cat "$work/cargo.log"; exit 1; }

# pcap FILE PAYLOAD...: an Ethernet capture of UDP datagrams 198.18.0.1:40000 -> 198.18.0.2:62201.
pcap() {
    python3 - "$@" <<'PY'
import struct, sys
out, payloads = sys.argv[1], sys.argv[2:]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, p in enumerate(payloads):
        p = p.encode()
        udp = struct.pack("!HHHH", 40000, 62201, 8 + len(p), 0) + p
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i + 1, 0x4000, 64, 17, 0,
                         bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp
        f.write(struct.pack("<IIII", 1, i, len(frame), len(frame)) + frame)
PY
}

# run DIR CAPTURE [fwknopd options...]: fwknopd on DIR's config, reading CAPTURE, then exiting.
run() {
    dir=$1 capture=$2
    shift 2
    timeout 60 fwknopd -f -v -C 1 --pcap-file "$capture" --pcap-any-direction \
        -c "$dir/fwknopd.conf" -a "$dir/access.conf" -d "$dir/digest.cache" \
        -p "$dir/run/fwknopd.pid" -r "$dir/run" "$@" || true
}

failed=0
while read -r name mode key hmac hmac_key packet; do
    dir=$work/$name
    mkdir -p "$dir/run"
    cat >"$dir/fwknopd.conf" <<CONF
PCAP_FILTER udp port 62201;
ENABLE_SPA_PACKET_AGING Y;
MAX_SPA_PACKET_AGE 120;
ENABLE_IPT_FORWARDING Y;
ENABLE_IPT_LOCAL_NAT Y;
CONF
    {
        echo "SOURCE ANY"
        echo "KEY_BASE64 $key"
        if [ "$hmac" != none ]; then
            echo "HMAC_KEY_BASE64 $hmac_key"
            echo "HMAC_DIGEST_TYPE $hmac"
        fi
        if [ "$mode" = legacy ]; then echo "ENCRYPTION_MODE legacy"; fi
        echo "FW_ACCESS_TIMEOUT 30"
    } >"$dir/access.conf"
    : >"$dir/digest.cache"
    chmod 600 "$dir/fwknopd.conf" "$dir/access.conf" "$dir/digest.cache"
    pcap "$dir/spa.pcap" "$packet"
    echo "$packet" >"$dir/packet"
    # --test: every check is made, the firewall is left alone.
    run "$dir" "$dir/spa.pcap" --test >"$dir/log" 2>&1
    if grep -q "Message String: 198.18.0.1,tcp/22" "$dir/log" &&
        grep -q -- "--test mode enabled, skipping firewall manipulation" "$dir/log"; then
        echo "ok: fwknopd accepts $name"
    else
        echo "FAILED: fwknopd refuses $name"
        cat "$dir/log"
        failed=1
    fi
done <"$work/packets.txt"

# The replay cache, across a restart, in a network namespace of our own (fwknopd then adds its
# iptables rules there): the first packet opens, fwknopd stops, a new fwknopd refuses it again;
# its digest.cache holds what spa::replay_digest computes.
dir=$work/access
ns=spa-check-$$
ip netns add "$ns"
trap 'ip netns delete "$ns" 2>/dev/null; rm -rf "$work"' EXIT
for attempt in 1 2; do
    timeout 60 ip netns exec "$ns" fwknopd -f -v -C 1 --pcap-file "$dir/spa.pcap" \
        --pcap-any-direction -c "$dir/fwknopd.conf" -a "$dir/access.conf" \
        -d "$dir/digest.cache" -p "$dir/run/fwknopd.pid" -r "$dir/run" \
        >"$dir/replay-$attempt.log" 2>&1 || true
done
digest=$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(sys.stdin.read().strip().encode()).digest()).decode().rstrip("="))' <"$dir/packet")
if grep -q "Added access rule" "$dir/replay-1.log" && grep -q "Replay detected" "$dir/replay-2.log" &&
    grep -q "^$digest " "$dir/digest.cache"; then
    echo "ok: fwknopd refuses a replay after a restart; its digest.cache holds $digest"
else
    echo "FAILED: replay"
    cat "$dir/replay-1.log" "$dir/replay-2.log" "$dir/digest.cache"
    failed=1
fi
exit $failed
