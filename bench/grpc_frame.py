#!/usr/bin/env python3
"""Writes one length-prefixed gRPC request frame (5-byte header + protobuf) for
bench/run.sh, hand-encoded so the benchmark needs no protobuf tooling.

  grpc_frame.py health            grpc.health.v1.HealthCheckRequest{}
  grpc_frame.py get ID            timesheets.v1.GetTimesheetRequest{id}
  grpc_frame.py list PAGE_SIZE    timesheets.v1.ListTimesheetsRequest{page_size}
  grpc_frame.py create            timesheets.v1.CreateTimesheetRequest{timesheet{...}}

The frame goes to stdout; run.sh hands it to h2load (-d) or wrk (gRPC-Web body).
"""
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_double(number, value):
    return varint(number << 3 | 1) + struct.pack("<d", value)


def message(kind, args):
    if kind == "health":
        return b""
    if kind == "get":
        return field_bytes(1, args[0].encode())
    if kind == "list":
        return field_varint(1, int(args[0]))
    if kind == "create":
        # Same entry as the peer benchmark's JSON body.
        timesheet = (
            field_bytes(3, b"2026-11-27")
            + field_bytes(4, b"Website")
            + field_double(5, 7.5)
            + field_bytes(6, b"x")
        )
        return field_bytes(1, timesheet)
    raise SystemExit(f"unknown message kind {kind!r}")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    body = message(sys.argv[1], sys.argv[2:])
    sys.stdout.buffer.write(b"\x00" + struct.pack(">I", len(body)) + body)


if __name__ == "__main__":
    main()
