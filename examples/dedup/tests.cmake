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

# Hostile arguments and output targets: exit status 2, one line on stderr, nothing replaced.
set(dedup_make "'$<TARGET_FILE:dedup>' --make-corpus 20 --output in.jsonl 2> /dev/null")
llm_example_error_test(example_dedup_num_perm_huge dedup
    ARGS --num-perm 100000000000000 --output kept.jsonl ABSENT kept.jsonl
    MESSAGE "dedup: --num-perm '100000000000000' is not an integer in [2, 4096]")
llm_example_error_test(example_dedup_threshold_text dedup
    ARGS --threshold 0.8x --output kept.jsonl ABSENT kept.jsonl
    MESSAGE "dedup: --threshold '0.8x' is not a number in (0, 1)")
llm_example_error_test(example_dedup_seed_negative dedup
    ARGS --seed -1 --output kept.jsonl ABSENT kept.jsonl
    MESSAGE "dedup: --seed '-1' is not an integer in [0, 4294967295]")
llm_example_error_test(example_dedup_make_corpus_huge dedup
    ARGS --make-corpus 100000000000 --output kept.jsonl ABSENT kept.jsonl
    MESSAGE "dedup: --make-corpus '100000000000' is not an integer in [1, 1000000]")
llm_example_error_test(example_dedup_missing_value dedup
    ARGS --output kept.jsonl --clusters ABSENT kept.jsonl
    MESSAGE "dedup: --clusters needs a value")
# Two outputs naming one file, or an output naming the input: refused before anything is written.
llm_example_error_test(example_dedup_same_output dedup
    ARGS --input in.jsonl --output x.txt --clusters ./x.txt SETUP "${dedup_make}" ABSENT x.txt
    MESSAGE "dedup: outputs 'x.txt' and './x.txt' name the same file")
llm_example_error_test(example_dedup_output_is_input dedup
    ARGS --input in.jsonl --output in.jsonl SETUP "${dedup_make}" UNCHANGED in.jsonl
    MESSAGE "dedup: output 'in.jsonl' names the input 'in.jsonl'")
# Non-regular targets are refused, not replaced: a FIFO stays a FIFO, a symlink and its target stay.
llm_example_error_test(example_dedup_fifo_target dedup
    ARGS --input in.jsonl --output fifo SETUP "${dedup_make} && mkfifo fifo" CHECK "test -p fifo"
    MESSAGE "dedup: output 'fifo' exists and is not a regular file (a FIFO); refusing to replace it")
llm_example_error_test(example_dedup_symlink_target dedup
    ARGS --input in.jsonl --output kept.jsonl --clusters link
    SETUP "${dedup_make} && echo old > target && ln -s target link" UNCHANGED target ABSENT kept.jsonl CHECK "test -L link"
    MESSAGE "dedup: output 'link' exists and is not a regular file (a symbolic link); refusing to replace it")
# One output cannot be written (its directory does not exist): the others keep their old bytes.
llm_example_error_test(example_dedup_report_fails_nothing_replaced dedup
    ARGS --input in.jsonl --output kept.jsonl --clusters clusters.tsv --report missing/report.json
    SETUP "${dedup_make} && echo old > kept.jsonl && echo old > clusters.tsv" UNCHANGED kept.jsonl clusters.tsv
    MESSAGE "dedup: cannot create a temporary file beside 'missing/report.json'")
llm_example_error_test(example_dedup_clusters_fails_nothing_replaced dedup
    ARGS --input in.jsonl --output kept.jsonl --clusters missing/clusters.tsv
    SETUP "${dedup_make} && echo old > kept.jsonl" UNCHANGED kept.jsonl
    MESSAGE "dedup: cannot create a temporary file beside 'missing/clusters.tsv'")
# A failure in the middle of the run (--strict on a malformed line) replaces no output either.
llm_example_error_test(example_dedup_strict_nothing_replaced dedup
    ARGS --input in.jsonl --output kept.jsonl --clusters clusters.tsv --strict
    SETUP "${dedup_make} && echo '{not json' >> in.jsonl && echo old > kept.jsonl && echo old > clusters.tsv"
    UNCHANGED kept.jsonl clusters.tsv
    MESSAGE "dedup: line 21:")
# All three outputs written together on success.
add_test(NAME example_dedup_three_outputs
         COMMAND sh -c "set -e; rm -rf dedup_three && mkdir dedup_three && cd dedup_three && ${dedup_make}
             '$<TARGET_FILE:dedup>' --input in.jsonl --output kept.jsonl --clusters clusters.tsv --report report.json --threads 2 2> /dev/null
             test -s kept.jsonl && test $(wc -l < clusters.tsv) -eq 20 && grep -q '\"documents\": 20' report.json
             test -z \"$(ls -A | grep '\\.tmp\\.')\""
         WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
set_tests_properties(example_dedup_three_outputs PROPERTIES LABELS "example;data")
# --help prints the usage and exits 0.
add_test(NAME example_dedup_help
         COMMAND sh -c "set -e; out=$('$<TARGET_FILE:dedup>' --help); echo \"$out\" | grep -q 'usage: dedup --output KEPT.jsonl'")
set_tests_properties(example_dedup_help PROPERTIES LABELS "example;data")
# A line is bounded (64 MiB): a stream without line breaks fails at once, from a file or stdin,
# instead of growing one line until memory runs out.
llm_example_error_test(example_dedup_line_too_long dedup
    ARGS --input /dev/zero --output kept.jsonl ABSENT kept.jsonl
    MESSAGE "dedup: line 1 is longer than the limit of 67108864 bytes (64 MiB)")
llm_example_error_test(example_dedup_stdin_line_too_long dedup
    ARGS --output kept.jsonl INPUT /dev/zero ABSENT kept.jsonl
    MESSAGE "dedup: line 1 is longer than the limit of 67108864 bytes (64 MiB)")
set_tests_properties(example_dedup_line_too_long example_dedup_stdin_line_too_long PROPERTIES TIMEOUT 30)
# The stdin spool is an unnamed temporary in $TMPDIR: a file and a symlink planted at the name a
# predictable spool would use (dedup-spool-<pid>; `exec` keeps the shell's pid) are left alone,
# the run succeeds, and nothing else is left in $TMPDIR, after a success or a failure.
set(dedup_spool "${CMAKE_CURRENT_BINARY_DIR}/dedup_spool")
add_test(NAME example_dedup_stdin_spool
         COMMAND sh -c "set -e; rm -rf '${dedup_spool}' && mkdir -p '${dedup_spool}/tmp' && cd '${dedup_spool}' && ${dedup_make}
             echo planted > target
             sh -c 'export TMPDIR=\"$PWD/tmp\"; ln -s \"$PWD/target\" \"tmp/dedup-spool-$$\"; exec \"$0\" --output kept.jsonl < in.jsonl' '$<TARGET_FILE:dedup>' 2> /dev/null
             sh -c 'export TMPDIR=\"$PWD/tmp\"; echo planted > \"tmp/dedup-spool-$$\"; exec \"$0\" --output kept2.jsonl < in.jsonl' '$<TARGET_FILE:dedup>' 2> /dev/null
             '$<TARGET_FILE:dedup>' --input in.jsonl --output expected.jsonl 2> /dev/null
             cmp kept.jsonl expected.jsonl && cmp kept2.jsonl expected.jsonl && test -s kept.jsonl
             test \"$(cat target)\" = planted && test -L tmp/dedup-spool-* && test $(ls -A tmp | wc -l) -eq 2
             for f in tmp/dedup-spool-*; do test -L \"$f\" || test \"$(cat \"$f\")\" = planted; done")
set_tests_properties(example_dedup_stdin_spool PROPERTIES LABELS "example;data")
llm_example_error_test(example_dedup_stdin_spool_failure dedup
    ARGS --output kept.jsonl --strict INPUT "${CMAKE_CURRENT_SOURCE_DIR}/dedup/tests.cmake"
    SETUP "mkdir tmp" CHECK "test -z \"$(ls -A tmp)\"" ABSENT kept.jsonl
    MESSAGE "dedup: line 1:")
set_tests_properties(example_dedup_stdin_spool_failure PROPERTIES
    ENVIRONMENT "TMPDIR=${CMAKE_CURRENT_BINARY_DIR}/error_tests/example_dedup_stdin_spool_failure/tmp")
# Under mpirun (built with MPI): 2 ranks give byte-identical kept documents and cluster table to
# one process, with a malformed line and a last line without '\n', plain and --verify --keep longest.
# Skipped (exit 77) without MPI or mpirun.
set(dedup_mpi "${CMAKE_CURRENT_BINARY_DIR}/dedup_mpi")
if(TARGET llm_mpi AND EXISTS "${MPIEXEC_EXECUTABLE}")
    set(dedup_mpirun "'${MPIEXEC_EXECUTABLE}' -np 2 --oversubscribe --allow-run-as-root '$<TARGET_FILE:dedup>'")
    add_test(NAME example_dedup_mpi
             COMMAND sh -c "set -e; rm -rf '${dedup_mpi}' && mkdir -p '${dedup_mpi}' && cd '${dedup_mpi}'
                 '$<TARGET_FILE:dedup>' --make-corpus 600 --output corpus.jsonl 2> /dev/null
                 { cat corpus.jsonl; echo '{not json'; printf '{\"text\": \"last line without a newline\"}'; } > in.jsonl
                 for flags in '' '--verify --keep longest'; do
                     '$<TARGET_FILE:dedup>' --input in.jsonl --output k1.jsonl --clusters c1.tsv --threads 1 $flags 2> /dev/null
                     ${dedup_mpirun} --input in.jsonl --output k2.jsonl --clusters c2.tsv --report r2.json --threads 1 $flags 2> /dev/null
                     cmp k1.jsonl k2.jsonl && cmp c1.tsv c2.tsv && grep -q '\"ranks\": 2' r2.json
                     test $(wc -l < k1.jsonl) -lt 590
                 done")
else()
    add_test(NAME example_dedup_mpi COMMAND sh -c "echo 'skipped: dedup was built without MPI, or mpirun is missing'; exit 77")
endif()
set_tests_properties(example_dedup_mpi PROPERTIES LABELS "example;data;mpirun" SKIP_RETURN_CODE 77 TIMEOUT 120)
