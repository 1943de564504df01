#!/bin/sh
# Writes vectors.txt beside this script: SPA packets built by Debian's fwknop client
# (fwknop-client 2.6.10, FKO protocol 3.0.0), each with its keys and the fields fwknop printed.
# `fwknop -T` builds the packet without sending it; addresses are numeric and never resolved.
# Run again only to replace the vectors: each run draws new salts, randoms and timestamps.
set -eu
cd "$(dirname "$0")"
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
# The test keys: bytes 0..31 for Rijndael, bytes 64..127 for the HMAC.
K=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
H=QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+fw==
out=vectors.txt.new
{
    echo "# SPA packets from Debian's fwknop-client $(fwknop --version | sed -n 's/^fwknop client \([^,]*\),.*/\1/p'), made by generate.sh."
    echo "# key/hmac_key: base64: or text: as fwknop's --key-base64-* or --key-rijndael took them."
} >"$out"

# (fwknop refuses -M legacy with an HMAC: "Legacy encryption mode is incompatible with HMAC usage".)
# vector NAME MODE HMAC DIGEST KEYSPEC HMACSPEC FWKNOP-ARGS...
vector() {
    name=$1 mode=$2 hmac=$3 digest=$4 key=$5 hkey=$6
    shift 6
    set -- "$@" -m "$digest"
    case $key in
    base64:*) set -- "$@" --key-base64-rijndael "${key#base64:}" ;;
    text:*) set -- "$@" --key-rijndael "${key#text:}" ;;
    esac
    if [ "$hmac" != none ]; then
        set -- "$@" --key-base64-hmac "${hkey#base64:}" --hmac-digest-type "$hmac"
    fi
    if [ "$mode" = legacy ]; then set -- "$@" -M legacy; fi
    HOME=$home fwknop --no-rc-file --no-save-args -T -v -D 198.18.0.2 -B "$home/packet" "$@" \
        >"$home/log" 2>&1
    field() { sed -n "s/^ *$1: //p" "$home/log" | head -n 1; }
    {
        echo
        echo "name: $name"
        echo "mode: $mode"
        echo "key: $key"
        echo "hmac: $hmac"
        echo "hmac_key: $hkey"
        echo "digest: $digest"
        echo "packet: $(cat "$home/packet")"
        echo "random: $(field 'Random Value')"
        echo "username: $(field Username)"
        echo "timestamp: $(field Timestamp)"
        echo "version: $(field 'FKO Version')"
        echo "message_type: $(field 'Message Type' | cut -d' ' -f1)"
        echo "message: $(field 'Message String')"
        echo "nat_access: $(field 'Nat Access')"
        echo "server_auth: $(field 'Server Auth')"
        echo "client_timeout: $(field 'Client Timeout')"
    } >>"$out"
}

vector access cbc sha256 sha256 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector ports-timeout cbc sha256 sha256 base64:$K base64:$H -A tcp/22,udp/53,tcp/8080 -a 198.18.0.1 -U alice -f 30
vector source-ip cbc sha256 sha256 base64:$K base64:$H -A udp/1194 -s
vector nat cbc sha256 sha256 base64:$K base64:$H -A tcp/22 -a 198.18.0.1 -N 198.18.0.10:2222
vector nat-timeout cbc sha256 sha256 base64:$K base64:$H -A tcp/22 -a 198.18.0.1 -N 198.18.0.10:2222 -f 600
vector nat-local cbc sha256 sha256 base64:$K base64:$H -A tcp/22 -a 198.18.0.1 --nat-local --nat-port 55000
vector nat-local-timeout cbc sha256 sha256 base64:$K base64:$H -A tcp/22 -a 198.18.0.1 --nat-local --nat-port 55000 -f 45
vector command cbc sha256 sha256 base64:$K base64:$H -a 198.18.0.1 --server-cmd "touch /tmp/spa ok"
vector md5-sha1 cbc sha1 md5 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector sha384-sha512 cbc sha512 sha384 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector sha512-md5 cbc md5 sha512 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector sha1-sha384 cbc sha384 sha1 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector sha3 cbc sha3_256 sha3_512 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector sha3-512 cbc sha3_512 sha3_256 base64:$K base64:$H -A tcp/22 -a 198.18.0.1
vector passphrase cbc sha256 sha256 text:knock-test-key base64:$H -A tcp/22 -a 198.18.0.1
vector no-hmac cbc none sha256 base64:$K - -A tcp/22 -a 198.18.0.1
vector legacy legacy none sha256 text:short - -A tcp/22 -a 198.18.0.1
mv "$out" vectors.txt
