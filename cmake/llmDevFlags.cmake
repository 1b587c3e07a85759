# SPDX-License-Identifier: Apache-2.0
# Flags for the project's own tests, benchmarks and examples (never imposed on consumers).
add_library(llm_dev_flags INTERFACE)
target_compile_options(llm_dev_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
if(LLM_WERROR)
    target_compile_options(llm_dev_flags INTERFACE
        $<$<COMPILE_LANGUAGE:CXX>:-Werror>
        $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
endif()
if(LLM_NATIVE)
    # -march=native gives AVX-512 here, which Highway 1.0.3 needs (with AES/PCLMUL, implied).
    target_compile_options(llm_dev_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(LLM_SANITIZE)
    target_compile_options(llm_dev_flags INTERFACE
        $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${LLM_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
    target_link_options(llm_dev_flags INTERFACE -fsanitize=${LLM_SANITIZE})
    target_compile_definitions(llm_dev_flags INTERFACE LLM_ENABLE_ASSERTS=1)
endif()
# Where tests and benchmarks find the peers' data (../shared/data beside the checkout).
get_filename_component(LLM_SHARED_DATA_DIR "${PROJECT_SOURCE_DIR}/../shared/data" ABSOLUTE)
target_compile_definitions(llm_dev_flags INTERFACE
    LLM_SHARED_DATA_DIR="${LLM_SHARED_DATA_DIR}"
    LLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_link_libraries(llm_dev_flags INTERFACE llm::llm)

# Put every binary in one place so scripts find them.
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/bin")
