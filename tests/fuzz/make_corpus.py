#!/usr/bin/env python3
"""Seed corpora for the packet-layer fuzzers (docs/WIRE.md, header v5).

tests/fuzz/corpus/       fuzz_packet: records [len u8][packet]
tests/fuzz/corpus_conn/  fuzz_conn:   records [ctl u8][len u8][packet]
Checksums are left 0: both harnesses seal packets themselves (fuzz_conn when
ctl bit 1 is set), so the seeds stay valid if the checksum changes.
Run from the repository root after a wire format change."""
import os
import struct

S = 0x5EED5EED
F_FRAG, F_UNREL, F_ACK, F_BATCH, F_DUP, F_RETX, F_RAW = 1, 2, 4, 8, 16, 32, 64
F_ABORT = F_DUP  # on a BYE: the sender ended the stream as broken
DATA, ACK, HELLO, HELLO_ACK, BYE, PING, PONG, COOKIE, COOKIE_ECHO = range(1, 10)


def pkt(t, flags=0, seq=0, ack=0, win=0, payload=b"", session=S):
    return struct.pack("<BBBBIIIHHI", 0xA7, 5, t, flags, session, seq, ack, len(payload) - (8 if flags & F_FRAG else 0), win, 0) + payload


def frag(total, off, data):
    return struct.pack("<II", total, off) + data


def batch(*msgs):
    return b"".join(struct.pack("<H", len(m)) + m for m in msgs)


hello = pkt(HELLO, payload=struct.pack("<IIII", 7, 64, 4096, 1472) + bytes(16))
cookie = pkt(COOKIE, payload=struct.pack("<IIII", 9, 64, 4096, 1472) + bytes(range(16)))
echo = pkt(COOKIE_ECHO, payload=struct.pack("<IIII", 7, 64, 4096, 1472) + bytes(range(16)))
# a handshake's flags are its sender's mode (none, UNRELIABLE, RAW|UNRELIABLE)
hello_raw = pkt(HELLO, F_RAW | F_UNREL, payload=struct.pack("<IIII", 7, 64, 4096, 1472) + bytes(16))
seeds = {
    "data": pkt(DATA, F_ACK, 7, 3, 64, b"hello"),
    "frag": pkt(DATA, F_FRAG, 7, payload=frag(6, 0, b"abc")) + b"",
    "batch": pkt(DATA, F_BATCH | F_ACK, 7, 1, 64, batch(b"ab", b"", b"xyz")),
    "ack": pkt(ACK, F_ACK, 0, 9, 64, struct.pack("<QQ", 0b1011, 1)),
    "ackdup": pkt(ACK, F_ACK | F_DUP, 0, 9, 64, struct.pack("<Q", 0b1)),
    # an ACK's seq: how long its sender held it (ns), here 25 us
    "ackheld": pkt(ACK, F_ACK, 25000, 9, 64, struct.pack("<Q", 0b1)),
    # a retransmission, and the ACK saying one arrived new
    "retx": pkt(DATA, F_ACK | F_RETX, 7, 3, 64, b"again"),
    "ackretx": pkt(ACK, F_ACK | F_RETX, 0, 9, 64, struct.pack("<Q", 0b10)),
    "hello": hello,
    "cookie": cookie,
    "echo": echo,
    "hello_raw": hello_raw,
    "ctrl": pkt(BYE, seq=12) + pkt(PING, F_ACK, 0, 8, 64) + pkt(PONG),
    # a BYE with ABORT: the stream ended as broken
    "abort": pkt(BYE, F_ACK | F_ABORT, 12, 9, 64),
    # a raw datagram (reliable=off): no seq, no ack, checksum 0 - not sealed
    "raw": pkt(DATA, F_RAW | F_UNREL, payload=b"raw!"),
}


def write(d, name, blob):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


for name, p in seeds.items():
    if name == "ctrl":  # three packets in one input
        blob = b"".join(bytes([len(x)]) + x for x in (pkt(BYE, seq=12), pkt(PING, F_ACK, 0, 8, 64), pkt(PONG)))
    else:
        blob = bytes([len(p)]) + p
    write("tests/fuzz/corpus", name, blob)


def rec(ctl, p):
    return bytes([ctl, len(p)]) + p


d1, d2 = pkt(DATA, F_ACK, 7, 0, 64, b"hello"), pkt(DATA, F_ACK, 8, 0, 64, b"hi")
conn = {
    "inorder": rec(3, d1) + rec(3, d2),
    "reorder": rec(3, d2) + rec(3 | 0x20, d1),
    "ack": rec(3 | 0x18, pkt(ACK, F_ACK, 0, 1, 64, struct.pack("<Q", 0))) + rec(3 | 0x40, pkt(PING, F_ACK, 0, 1, 64)),
    "held": rec(3 | 0x18, pkt(ACK, F_ACK, 0xFFFFFFFF, 1, 64, struct.pack("<Q", 0))) + rec(3, pkt(PONG, F_ACK, 0, 1, 64)),
    "slow": rec(7, d1) + rec(3 | 0x20, d2),
    "retx": rec(3, d2) + rec(3, pkt(DATA, F_ACK | F_RETX, 7, 0, 64, b"hello")) + rec(3 | 0x18, pkt(ACK, F_ACK | F_RETX, 0, 1, 64, struct.pack("<Q", 0))),
    "frag": rec(3, pkt(DATA, F_FRAG | F_ACK, 7, 0, 64, frag(6, 0, b"abc"))) + rec(3, pkt(DATA, F_FRAG | F_ACK, 8, 0, 64, frag(6, 3, b"def"))),
    "batch": rec(3, pkt(DATA, F_BATCH | F_ACK, 7, 0, 64, batch(b"a", b"bc"))),
    "bye": rec(3, d1) + rec(3, pkt(BYE, F_ACK, 9, 0, 64)) + rec(3, d2),
    # the peer ended the stream as broken: what came before is still delivered
    "abort": rec(3, d1) + rec(3, pkt(BYE, F_ACK | F_ABORT, 9, 0, 64)) + rec(3, d2),
    # a raw datagram on a reliable stream: malformed, counted
    "raw": rec(3, d1) + rec(1, pkt(DATA, F_RAW | F_UNREL, payload=b"raw!")) + rec(3, d2),
}
for name, blob in conn.items():
    write("tests/fuzz/corpus_conn", name, blob)
