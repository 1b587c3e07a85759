# SPDX-License-Identifier: Apache-2.0
# The demo checks its own figures: it prints MISMATCH and exits non-zero when one is off.
add_test(NAME example_attention_demo COMMAND attention_demo WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(example_attention_demo PROPERTIES LABELS "example" FAIL_REGULAR_EXPRESSION "MISMATCH|FAILED")
# Arguments go through the shared parser: a bad one is exit status 2 and one line on stderr.
llm_example_error_test(example_attention_demo_seq_len_text attention_demo
    ARGS --seq-len 1k MESSAGE "attention_demo: --seq-len '1k' is not an integer in [64, 16384]")
llm_example_error_test(example_attention_demo_seq_len_small attention_demo
    ARGS --seq-len 16 MESSAGE "attention_demo: --seq-len '16' is not an integer in [64, 16384]")
llm_example_error_test(example_attention_demo_seq_len_huge attention_demo
    ARGS --seq-len 18446744073709551616 MESSAGE "attention_demo: --seq-len '18446744073709551616' is not an integer in [64, 16384]")
llm_example_error_test(example_attention_demo_positional attention_demo
    ARGS 1024 MESSAGE "attention_demo: unexpected argument '1024' (see --help)")
# The smallest length runs and passes its checks (a prefill of 32 tokens before the 32 decode steps).
add_test(NAME example_attention_demo_min COMMAND attention_demo --seq-len 64)
set_tests_properties(example_attention_demo_min PROPERTIES LABELS "example" FAIL_REGULAR_EXPRESSION "MISMATCH|FAILED")
