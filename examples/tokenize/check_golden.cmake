# SPDX-License-Identifier: Apache-2.0
# Runs `tokenize` on INPUT with ARGS (a ;-list) and checks its stdout equals EXPECTED byte for
# byte (what `tokenize ... < INPUT | cmp - EXPECTED` does in a shell).
# usage: cmake -DTOOL=... -DINPUT=... -DEXPECTED=... -DOUTPUT=... "-DARGS=--vocab;FILE;..." -P check_golden.cmake
execute_process(COMMAND "${TOOL}" ${ARGS} INPUT_FILE "${INPUT}" OUTPUT_FILE "${OUTPUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tokenize ${ARGS} exited with ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${OUTPUT}" "${EXPECTED}" RESULT_VARIABLE differ)
if(NOT differ EQUAL 0)
    message(FATAL_ERROR "tokenize ${ARGS}: output ${OUTPUT} differs from ${EXPECTED}")
endif()
