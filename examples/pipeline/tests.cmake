# SPDX-License-Identifier: Apache-2.0
# ctest of the `pipeline` example (included by examples/CMakeLists.txt): the --quick run on
# Debian's bible-kjv text (skipped when the `bible` program is absent), then a rerun that must
# skip every finished stage (quick_test.cmake). The run itself checks that the loss fell and
# loads what it wrote (checkpoints, tokenizer, both GGUF files).
add_test(NAME example_pipeline_quick
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:pipeline>" "-DWORK=${CMAKE_CURRENT_BINARY_DIR}/pipeline_quick_work"
                 -P "${CMAKE_CURRENT_LIST_DIR}/quick_test.cmake")
set_tests_properties(example_pipeline_quick PROPERTIES LABELS "example;pipeline" SKIP_REGULAR_EXPRESSION "pipeline: skipped" TIMEOUT 600)
llm_example_error_test(example_pipeline_bad_flag pipeline ARGS --bogus MESSAGE "pipeline: unknown")
