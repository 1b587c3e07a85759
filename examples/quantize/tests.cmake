# SPDX-License-Identifier: Apache-2.0
# ctest: `quantize` on a small model written by gguf-py, every output loaded by gguf-py
# (check_gguf_py.py through run_check.sh, which installs gguf-py into a venv under the build tree
# when the system python lacks it; skipped only without python or a package index), and bad
# arguments. Included by examples/CMakeLists.txt.
add_test(NAME example_quantize
         COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/run_check.sh" $<TARGET_FILE:quantize> "${CMAKE_CURRENT_BINARY_DIR}/quantize_work")
set_tests_properties(example_quantize PROPERTIES LABELS "example;quant" SKIP_RETURN_CODE 77)

llm_example_error_test(example_quantize_missing quantize ARGS does-not-exist.gguf out.gguf q4_0
    MESSAGE "quantize: " ABSENT out.gguf)
llm_example_error_test(example_quantize_bad_type quantize ARGS in.gguf out.gguf q7_0
    MESSAGE "quantize: unknown TYPE 'q7_0'" ABSENT out.gguf)
llm_example_error_test(example_quantize_no_type quantize ARGS in.gguf out.gguf
    MESSAGE "quantize: expected IN.gguf OUT.gguf TYPE (see --help)")
