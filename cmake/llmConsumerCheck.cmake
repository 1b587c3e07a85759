# SPDX-License-Identifier: Apache-2.0
# ctest script: builds and runs tests/consumer against llm in one MODE:
#   install      - `cmake --install` into a fresh prefix, find_package(llm CONFIG REQUIRED),
#                  then the same program through pkg-config's flags;
#   subdirectory - add_subdirectory() of the source tree;
#   fetchcontent - FetchContent_Declare(llm SOURCE_DIR ...) + FetchContent_MakeAvailable.
cmake_minimum_required(VERSION 3.25)
foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR CXX_COMPILER GENERATOR)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "llmConsumerCheck: ${var} not set")
    endif()
endforeach()

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        string(REPLACE ";" " " cmd "${ARGN}")
        message(FATAL_ERROR "llmConsumerCheck(${MODE}): `${cmd}` failed (${rc})")
    endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(config_args -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DLLM_CONSUMER_EXPECT_MPI=${EXPECT_MPI})
if(MODE STREQUAL "install")
    run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
    run(${CMAKE_COMMAND} ${config_args} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DLLM_CONSUMER_MODE=find_package)
elseif(MODE STREQUAL "subdirectory" OR MODE STREQUAL "fetchcontent")
    run(${CMAKE_COMMAND} ${config_args} -DLLM_CONSUMER_MODE=${MODE} -DLLM_SOURCE_DIR=${SOURCE_DIR})
else()
    message(FATAL_ERROR "llmConsumerCheck: unknown MODE ${MODE}")
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/llm_consumer")
# llm::mpi (built when the package has it; required when the build tree had MPI): one rank, no mpirun.
if(EXISTS "${WORK_DIR}/build/llm_consumer_mpi")
    set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)
    set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
    run("${WORK_DIR}/build/llm_consumer_mpi")
endif()

if(MODE STREQUAL "install")
    # pkg-config: the same program compiled with only the flags llm.pc gives.
    find_program(PKG_CONFIG pkg-config REQUIRED)
    set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig")
    execute_process(COMMAND ${PKG_CONFIG} --cflags --libs llm OUTPUT_VARIABLE flags
                    RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "llmConsumerCheck: pkg-config --cflags llm failed")
    endif()
    separate_arguments(flags UNIX_COMMAND "${flags}")
    run(${CXX_COMPILER} -O1 "${SOURCE_DIR}/tests/consumer/main.cpp" ${flags} -o "${WORK_DIR}/llm_consumer_pc")
    run("${WORK_DIR}/llm_consumer_pc")
endif()
message(STATUS "llmConsumerCheck(${MODE}): ok")
