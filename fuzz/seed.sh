#!/usr/bin/env bash
# Seeds the fuzz corpora from the sample captures, so fuzzing starts from real structure:
# decode_capture gets the capture files (and the saved regressions); each codec_* target gets
# every side of every captured conversation of its protocol, in the input layout of src/lib.rs
# (side byte, no cuts, the stream), and each datagram_* target every captured datagram of its
# protocol, written by `wirecheck decode --format json`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode_capture corpus/reassembly
cp ../fixtures/captures/*.pcap* corpus/decode_capture/
for t in regressions/*/; do
  [ -d "$t" ] || continue
  mkdir -p "corpus/$(basename "$t")"
  cp "$t"* "corpus/$(basename "$t")/" 2>/dev/null || true
done
wirecheck=../target/debug/wirecheck
[ -x "$wirecheck" ] || (cd .. && cargo build --quiet)
for f in ../fixtures/captures/*.pcap ../fixtures/captures/seeded/*.pcapng ../fixtures/captures/formats/*.pcap*; do
  "$wirecheck" decode "$f" --format json
done | python3 -c '
import json, sys, os, hashlib
decoder = json.JSONDecoder()
text = sys.stdin.read()
at, n = 0, 0
while at < len(text):
    while at < len(text) and text[at].isspace():
        at += 1
    if at >= len(text):
        break
    convs, at = decoder.raw_decode(text, at)
    for c in convs:
        if c.get("data_of") or c["protocol"] == "datagram":
            continue
        if c["transport"] == "udp":
            # A datagram target reads one datagram: each is an input of its own.
            target = "corpus/datagram_" + c["protocol"].replace("-", "_")
            if not os.path.exists("fuzz_targets/" + os.path.basename(target) + ".rs"):
                continue
            os.makedirs(target, exist_ok=True)
            for e in c["dialogue"]["events"]:
                if e["kind"] != "data":
                    continue
                data = bytes.fromhex(e["bytes"]["hex"]) if "hex" in e["bytes"] else e["bytes"]["text"].encode()
                blob = bytes([0 if e["dir"] == "c2s" else 1, 0]) + data
                open(os.path.join(target, hashlib.sha1(blob).hexdigest()), "wb").write(blob)
                n += 1
            continue
        if c["transport"] != "tcp":
            continue
        target = "corpus/codec_" + c["protocol"].replace("-", "_")
        if not os.path.isdir(target.replace("corpus/", "fuzz_targets/").rsplit("/", 1)[0]):
            continue
        for side, d in ((0, "c2s"), (1, "s2c")):
            data = b"".join(
                bytes.fromhex(e["bytes"]["hex"]) if "hex" in e["bytes"] else e["bytes"]["text"].encode()
                for e in c["dialogue"]["events"] if e["kind"] == "data" and e["dir"] == d)
            if not data or not os.path.exists("fuzz_targets/" + os.path.basename(target) + ".rs"):
                continue
            os.makedirs(target, exist_ok=True)
            blob = bytes([side, 0]) + data
            open(os.path.join(target, hashlib.sha1(blob).hexdigest()), "wb").write(blob)
            n += 1
print(f"seeded {n} codec inputs")
'
echo "seeded: $(ls corpus/decode_capture | wc -l) decode_capture, $(ls corpus/reassembly 2>/dev/null | wc -l) reassembly inputs"
# No public capture holds DASH: codec_dash starts from the lab's MPDs, each as the body of a
# response to its request (side byte 1: the server's).
mkdir -p corpus/codec_dash
for m in ../fixtures/dash/*/*.mpd; do
  len=$(wc -c < "$m")
  { printf '\001\000HTTP/1.1 200 OK\r\nContent-Type: application/dash+xml\r\nContent-Length: %s\r\n\r\n' "$len"; cat "$m"; } \
    > "corpus/codec_dash/$(basename "$(dirname "$m")")-mpd"
done
