# SPDX-License-Identifier: Apache-2.0
# Runs PROGRAM and passes only when it was killed by abort() and its stderr matches EXPECT
# (a plain exit, with any code, or a missing message fails).
execute_process(COMMAND "${PROGRAM}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc MATCHES "abort")
    message(FATAL_ERROR "expected ${PROGRAM} to abort, got result '${rc}'\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
    message(FATAL_ERROR "stderr of ${PROGRAM} lacks '${EXPECT}'\nstderr: ${err}")
endif()
message(STATUS "aborted with: ${err}")
