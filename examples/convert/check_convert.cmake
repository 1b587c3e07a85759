# SPDX-License-Identifier: Apache-2.0
# Runs `convert MODEL OUT --type TYPE --tokenizer <tiny tokenizer>`, then
# `generate --model OUT --prompt-ids PROMPT -n 16 --ids`: stdout must be EXPECT (when given) and
# start with FIRST.
execute_process(COMMAND "${CONVERT}" "${MODEL}" "${OUT}" --type "${TYPE}" --tokenizer tests/golden/generate/tiny-tokenizer/tokenizer.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "convert exited ${rc}: ${err}")
endif()
message(STATUS "${out}")
execute_process(COMMAND "${GENERATE}" --model "${OUT}" --prompt-ids "${PROMPT}" -n 16 --ids RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "generate exited ${rc}: ${err}")
endif()
string(STRIP "${out}" out)
if(EXPECT AND NOT out STREQUAL "${EXPECT}")
    message(FATAL_ERROR "generate printed '${out}', expected '${EXPECT}'")
endif()
if(NOT out MATCHES "^${FIRST} ")
    message(FATAL_ERROR "generate printed '${out}', expected it to start with ${FIRST}")
endif()
