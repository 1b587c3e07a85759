# SPDX-License-Identifier: Apache-2.0
# ctest: `quantize` on a small model written by gguf-py, every output loaded by gguf-py
# (check_gguf_py.py; skipped when python or the gguf package is absent), and bad arguments.
# Included by examples/CMakeLists.txt.
find_program(LLM_QUANTIZE_PYTHON NAMES python3 python HINTS /work/venv/bin "$ENV{VIRTUAL_ENV}/bin" NO_CACHE)
if(LLM_QUANTIZE_PYTHON)
    add_test(NAME example_quantize
             COMMAND "${LLM_QUANTIZE_PYTHON}" "${CMAKE_CURRENT_LIST_DIR}/check_gguf_py.py" $<TARGET_FILE:quantize>
                     "${CMAKE_CURRENT_BINARY_DIR}/quantize_work")
    set_tests_properties(example_quantize PROPERTIES LABELS "example;quant" SKIP_RETURN_CODE 77)
else()
    add_test(NAME example_quantize COMMAND ${CMAKE_COMMAND} -E echo "no python: skipped")
    set_tests_properties(example_quantize PROPERTIES LABELS "example;quant" SKIP_REGULAR_EXPRESSION "skipped")
endif()

llm_example_error_test(example_quantize_missing quantize ARGS does-not-exist.gguf out.gguf q4_0
    MESSAGE "quantize: " ABSENT out.gguf)
llm_example_error_test(example_quantize_bad_type quantize ARGS in.gguf out.gguf q7_0
    MESSAGE "quantize: unknown TYPE 'q7_0'" ABSENT out.gguf)
llm_example_error_test(example_quantize_no_type quantize ARGS in.gguf out.gguf
    MESSAGE "quantize: expected IN.gguf OUT.gguf TYPE (see --help)")
