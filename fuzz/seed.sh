#!/usr/bin/env bash
# Seeds the decode_capture corpus with the sample captures (fixtures/captures/*.pcap*) and the
# saved regressions, so that fuzzing starts from real pcap/pcapng structure.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode_capture corpus/reassembly
cp ../fixtures/captures/*.pcap* corpus/decode_capture/
if compgen -G "regressions/decode_capture/*" >/dev/null; then cp regressions/decode_capture/* corpus/decode_capture/; fi
if compgen -G "regressions/reassembly/*" >/dev/null; then cp regressions/reassembly/* corpus/reassembly/; fi
echo "seeded: $(ls corpus/decode_capture | wc -l) decode_capture, $(ls corpus/reassembly | wc -l) reassembly inputs"
