#!/usr/bin/env python3
"""An independent implementation of knock's authenticated knocks (PROTOCOL.md), standard
library only, for the test vectors and for anyone writing a client in another language.

Reads cases from stdin, one per line, and prints each line followed by " -> " and the result:

    ports KEY DOOR STEP PORTSET KNOCKS          -> P1,P2,...
    seal KEY DOOR STEP INDEX PORT NONCE SOURCE  -> 0xSEQ      (SOURCE: - without bind_source)

KEY is base64, DOOR is percent-free text without spaces, PORTSET as in a config
("1024-65535" or "1-9,11").
"""

import base64
import hashlib
import hmac
import ipaddress
import struct
import sys


def door_bytes(door):
    name = door.encode("utf-8")
    return struct.pack(">H", len(name)) + name


def port_list(text):
    ports = set()
    for item in text.split(","):
        low, _, high = item.strip().partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return sorted(ports)


def sequence(key, door, step, allowed, knocks):
    n = len(allowed)
    zone = 65536 - 65536 % n
    out = []
    block = 0
    while len(out) < min(knocks, n):
        msg = b"knock-ports-v1\x00" + door_bytes(door) + struct.pack(">QI", step, block)
        digest = hmac.new(key, msg, hashlib.sha256).digest()
        for (v,) in struct.iter_unpack(">H", digest):
            if v < zone and len(out) < knocks and allowed[v % n] not in out:
                out.append(allowed[v % n])
        block += 1
    return out


def seal(key, door, step, index, port, nonce, source):
    if source is None:
        src = b"\x00"
    else:
        addr = ipaddress.ip_address(source)
        src = bytes([addr.version]) + addr.packed
    msg = (
        b"knock-seal-v1\x00"
        + door_bytes(door)
        + struct.pack(">QBHB", step, index, port, nonce)
        + src
    )
    mac = hmac.new(key, msg, hashlib.sha256).digest()
    return struct.unpack(">I", bytes([nonce]) + mac[:3])[0]


def answer(words):
    kind, key, door, step = words[0], base64.b64decode(words[1], validate=True), words[2], int(words[3])
    if kind == "ports":
        ports = sequence(key, door, step, port_list(words[4]), int(words[5]))
        return ",".join(str(p) for p in ports)
    if kind == "seal":
        index, port, nonce = int(words[4]), int(words[5]), int(words[6])
        source = None if words[7] == "-" else words[7]
        return "0x%08x" % seal(key, door, step, index, port, nonce, source)
    raise ValueError("unknown case: " + kind)


def main():
    for line in sys.stdin:
        line = line.strip()
        if line:
            print(line + " -> " + answer(line.split()))


if __name__ == "__main__":
    main()
