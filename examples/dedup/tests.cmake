# SPDX-License-Identifier: Apache-2.0
# ctest: `dedup` on a small synthetic corpus with planted near-duplicates (it must drop some and
# keep every original), from stdin with a malformed line, and --strict on that line must fail.
# Included by examples/CMakeLists.txt.
set(dedup_work "${CMAKE_CURRENT_BINARY_DIR}/dedup_example")
add_test(NAME example_dedup
         COMMAND sh -c "set -e; mkdir -p '${dedup_work}'; cd '${dedup_work}'
             '$<TARGET_FILE:dedup>' --make-corpus 400 --output corpus.jsonl
             '$<TARGET_FILE:dedup>' --input corpus.jsonl --output kept.jsonl --clusters clusters.tsv --verify --threads 2 2> report.txt
             cat report.txt
             test $(wc -l < clusters.tsv) -eq 400
             kept=$(wc -l < kept.jsonl); test \"$kept\" -lt 400 && test \"$kept\" -gt 200
             { head -n 5 corpus.jsonl; echo '{not json'; } | '$<TARGET_FILE:dedup>' --output - > stdin_kept.jsonl 2> stdin_report.txt
             grep -q 'line 6' stdin_report.txt
             if { head -n 5 corpus.jsonl; echo '{not json'; } | '$<TARGET_FILE:dedup>' --output - --strict > /dev/null 2>&1; then exit 1; fi")
set_tests_properties(example_dedup PROPERTIES LABELS "example;data")
