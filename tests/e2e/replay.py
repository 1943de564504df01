#!/usr/bin/env python3
"""Replays the frames of a tcpdump capture byte for byte on an interface (AF_PACKET), for the
authenticated-knock tests: `replay.py CAPTURE IFACE [NEW_IPV4_SOURCE]`. With a new source, the
IPv4 source address is rewritten and the IP and TCP checksums fixed, and nothing else changes
(sequence numbers included). Standard library only."""

import socket
import struct
import sys


def frames(data):
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    at = 24
    while at + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        yield bytearray(data[at + 16:at + 16 + incl])
        at += 16 + incl


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def resource(frame, source):
    ip = 14
    ihl = (frame[ip] & 0x0F) * 4
    frame[ip + 12:ip + 16] = socket.inet_aton(source)
    frame[ip + 10:ip + 12] = b"\0\0"
    frame[ip + 10:ip + 12] = struct.pack("!H", checksum(bytes(frame[ip:ip + ihl])))
    total = struct.unpack("!H", frame[ip + 2:ip + 4])[0]
    tcp = ip + ihl
    segment = frame[tcp:ip + total]
    segment[16:18] = b"\0\0"
    pseudo = bytes(frame[ip + 12:ip + 20]) + struct.pack("!BBH", 0, 6, len(segment))
    segment[16:18] = struct.pack("!H", checksum(pseudo + bytes(segment)))
    frame[tcp:ip + total] = segment


def main():
    capture, iface = sys.argv[1], sys.argv[2]
    source = sys.argv[3] if len(sys.argv) > 3 else None
    with open(capture, "rb") as f:
        data = f.read()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent = 0
    for frame in frames(data):
        if source:
            resource(frame, source)
        sock.send(bytes(frame))
        sent += 1
    print("replayed %d frames" % sent)


if __name__ == "__main__":
    main()
